import { Alert, Badge, Button, Card, FileInput, Group, NumberInput, Progress, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useCallback, useEffect, useState } from "react";
import { api, call, can, downloadFrom, postForm, type Job } from "../api/client";
import type { paths } from "../api/schema";
import { fmtDateTime, fmtNum, fmtPct, fromLocalInput, toLocalInput } from "../lib/format";
import type { Machine, MachineModel } from "../lib/machines";
import { useSession } from "../lib/session";
import { FINISHED, useFollow } from "../lib/useFollow";
import { REF } from "./Registry";
import { Feedback } from "./Feedback";

interface SensorMetrics {
  sensor: string;
  readings?: number;
  mean?: number;
  std?: number;
  alert_rate?: number;
}

function num(m: MachineModel, key: string): number | null {
  const v = (m.metrics as Record<string, unknown> | null)?.[key];
  return typeof v === "number" ? v : null;
}

function perSensor(m: MachineModel): SensorMetrics[] {
  const v = (m.metrics as Record<string, unknown> | null)?.sensors;
  return Array.isArray(v) ? (v as SensorMetrics[]) : [];
}

/** A `datetime-local` value as an ISO time for the API, or null. */
function isoOf(value: string): string | null {
  const t = fromLocalInput(value);
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

interface Field {
  param: string;
  label: string;
  placeholder: string;
  step: number;
  min: number;
  max?: number;
  w: number;
}

const FALSE_ALARMS: Field = { param: "false_alarm_rate", label: "False-alarm rate", placeholder: "default 0.01", step: 0.005, min: 0, max: 0.49, w: 140 };
/** a table detector's threshold multiplier: its real trade between faults found and false alerts (docs/benchmarks.md) */
const MARGIN: Field = { param: "threshold_margin", label: "Threshold margin", placeholder: "default 1", step: 0.25, min: 0.5, max: 10, w: 140 };
const NEIGHBOURS: Field = { param: "n_neighbors", label: "Neighbours", placeholder: "default 10", step: 1, min: 1, max: 500, w: 120 };

/** The detectors a machine model can run (the API's `method`, the service's default first), what each is good for,
 * and the parameters the form offers for each; left empty, a parameter keeps the detector's default. Streaming
 * detectors score each sensor's series; table detectors (the sensor engine's methods) one model over all sensors. */
export const DETECTORS: { value: Detector; label: string; group: string; hint: string; fields: Field[] }[] = [
  {
    value: "stream",
    label: "Stream: each sensor's deviation",
    group: "Each sensor on its own",
    hint: "Each sensor's deviation from its running mean: light, adapts as it runs.",
    fields: [
      { param: "threshold", label: "Threshold", placeholder: "default 3", step: 0.5, min: 0, w: 120 },
      { param: "learning_period", label: "Learning period", placeholder: "default 300", step: 1, min: 2, w: 130 },
    ],
  },
  {
    value: "surprise",
    label: "Surprise: new patterns, rare levels",
    group: "Each sensor on its own",
    hint: "Each sensor's new patterns, rare levels and deviations; wants long series.",
    fields: [
      { param: "threshold", label: "Threshold", placeholder: "default 0.5", step: 0.05, min: 0, max: 1, w: 120 },
      { param: "learning_period", label: "Learning period", placeholder: "default 750", step: 1, min: 2, w: 130 },
    ],
  },
  {
    value: "mahalanobis",
    label: "Mahalanobis",
    group: "All sensors together",
    hint: "On SKAB the fewest false alerts at its default margin; a fault can take longer to show.",
    fields: [{ ...MARGIN, placeholder: "default 2.5" }, FALSE_ALARMS],
  },
  { value: "pca", label: "PCA", group: "All sensors together", hint: "At margin 1, finds faults sooner than Mahalanobis with more false alerts; a margin of 1.5 to 2.5 trades them back.", fields: [MARGIN, FALSE_ALARMS] },
  { value: "knn", label: "Nearest neighbours (kNN)", group: "All sensors together", hint: "At margin 1, finds faults sooner than Mahalanobis with more false alerts; a margin of 1.5 to 2.5 trades them back. About 4× the CPU per reading.", fields: [MARGIN, FALSE_ALARMS, NEIGHBOURS] },
  { value: "lof", label: "Local outlier factor (LOF)", group: "All sensors together", hint: "At margin 1, finds faults sooner than Mahalanobis with more false alerts; a margin of 1.5 to 2.5 trades them back. About 4× the CPU per reading.", fields: [MARGIN, FALSE_ALARMS, NEIGHBOURS] },
  { value: "ecod", label: "ECOD: tail probabilities", group: "All sensors together", hint: "No parameters of its own; on SKAB, later to find faults than PCA, with more false alerts.", fields: [MARGIN, FALSE_ALARMS] },
  { value: "copod", label: "COPOD: copula tails", group: "All sensors together", hint: "No parameters of its own; on SKAB, more false alerts than PCA.", fields: [MARGIN, FALSE_ALARMS] },
  {
    value: "hbos",
    label: "Histograms (HBOS)",
    group: "All sensors together",
    hint: "On SKAB it found every fault, later than PCA; a histogram per feature.",
    fields: [MARGIN, FALSE_ALARMS, { param: "n_bins", label: "Bins", placeholder: "default 20", step: 1, min: 2, max: 1000, w: 110 }],
  },
  {
    value: "iforest",
    label: "Isolation forest",
    group: "All sensors together",
    hint: "Randomised trees; on SKAB, later to find faults than PCA, with more false alerts; the slowest to score.",
    fields: [MARGIN, FALSE_ALARMS, { param: "n_estimators", label: "Trees", placeholder: "default 200", step: 10, min: 10, max: 5000, w: 110 }],
  },
  {
    value: "autoencoder",
    label: "Autoencoder",
    group: "All sensors together",
    hint: "A small neural network: the slowest to train.",
    fields: [MARGIN, FALSE_ALARMS, { param: "epochs", label: "Epochs", placeholder: "default 30", step: 1, min: 1, max: 1000, w: 110 }],
  },
  { value: "ensemble", label: "Ensemble", group: "All sensors together", hint: "Mahalanobis, ECOD and isolation forest, their ranks averaged.", fields: [MARGIN, FALSE_ALARMS] },
];
const STREAMING: ReadonlySet<string> = new Set(DETECTORS.filter((d) => d.group === "Each sensor on its own").map((d) => d.value));
type TrainBody = NonNullable<paths["/api/v1/machines/{name}/models/train"]["post"]["requestBody"]>["content"]["application/json"];
type Detector = NonNullable<TrainBody["method"]>;

/** Where a version's training data or files came from, in a few words. */
function origin(m: MachineModel): string {
  const src = m.source as { file?: unknown; start?: unknown; end?: unknown; registry?: { name?: unknown; version?: unknown } };
  if (src.registry) return `${String(src.registry.name)} v${String(src.registry.version)} (registry)`;
  if (src.file !== undefined) return String(src.file);
  if (src.start) return `${fmtDateTime(String(src.start)).slice(0, 16)} to ${fmtDateTime(String(src.end)).slice(0, 16)}`;
  return "–";
}

function statusColor(s: string) {
  return s === "ready" ? "#237a35" : s === "failed" ? "red.9" : "blue.9";
}

/** The machine's sensor model versions with their metrics; engineers train (a job with progress), activate and roll
 * back. */
export function MachineModels({ machine, onChanged, chartRange }: { machine: Machine; onChanged: () => void; chartRange: [number, number] | null }) {
  const { me } = useSession();
  const engineer = can(me.role, "engineer");
  const [models, setModels] = useState<MachineModel[] | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const now = Date.now() / 1000;
  const [start, setStart] = useState(toLocalInput((now - 7 * 86400) * 1000));
  const [end, setEnd] = useState(toLocalInput(now * 1000));
  const [detector, setDetector] = useState<Detector>(DETECTORS[0].value);
  const [values, setValues] = useState<Record<string, number | string>>({});
  const spec = DETECTORS.find((d) => d.value === detector) ?? DETECTORS[0];
  const [finished, setFinished] = useState<Job | null>(null);
  const [upload, setUpload] = useState<File | null>(null);
  const [ref, setRef] = useState("");
  const [registered, setRegistered] = useState("");
  const name = machine.name;

  const load = useCallback(async () => {
    try {
      // the sensor (anomaly) models; maintenance models (rul, failure) are the Maintenance section's
      const ms = (await call(api.GET("/api/v1/machines/{name}/models", { params: { path: { name } } }))).filter((m) => (m.kind ?? "anomaly") === "anomaly");
      setModels(ms);
      setSelected((s) => (s !== null && ms.some((m) => m.id === s) ? s : (ms.find((m) => m.active)?.id ?? ms[0]?.id ?? null)));
    } catch (e) {
      setError((e as Error).message);
    }
  }, [name]);
  useEffect(() => {
    load();
  }, [load, machine.active_model_id]);
  const { job, follow, adopt, running } = useFollow((j) => {
    setFinished(j);
    load();
  }, 2000);

  // a training job of this machine already queued or running: followed
  useEffect(() => {
    if (!engineer) return;
    call(api.GET("/api/v1/jobs", { params: { query: { active: true } } })).then(
      (jobs) => {
        const mine = jobs.find((j) => j.kind === "sensor_train" && (j.params as { machine?: string }).machine === name);
        if (mine) adopt(mine);
      },
      () => {},
    );
  }, [engineer, name, adopt]);

  async function train() {
    setMessage(null);
    setFinished(null);
    const s = isoOf(start);
    const e = isoOf(end);
    if (!s || !e) {
      setMessage({ ok: false, text: "Choose the start and end of the readings to train on." });
      return;
    }
    const params: Record<string, number> = {};
    for (const f of spec.fields) if (values[f.param] !== undefined && values[f.param] !== "") params[f.param] = Number(values[f.param]);
    try {
      const body = { start: s, end: e, method: detector, params } as TrainBody;
      const j = await call(api.POST("/api/v1/machines/{name}/models/train", { params: { path: { name } }, body }));
      follow(j);
      load();
    } catch (err) {
      setMessage({ ok: false, text: (err as Error).message });
    }
  }

  async function cancel() {
    if (!job) return;
    try {
      await call(api.POST("/api/v1/jobs/{job_id}/cancel", { params: { path: { job_id: job.id } } }));
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    }
  }

  const importedAs = (m: MachineModel) => `Imported as version ${m.version} (${m.method}): check it below and activate it.`;

  function importModel() {
    if (!upload) return;
    const form = new FormData();
    form.append("file", upload);
    return act(() => postForm<MachineModel>(`/api/v1/machines/${encodeURIComponent(name)}/models/import`, form), importedAs, (m) => {
      setUpload(null);
      setSelected(m.id);
    });
  }

  function importRegistered() {
    const body = { ref: ref.trim() };
    return act(() => call(api.POST("/api/v1/machines/{name}/models/registry-import", { params: { path: { name } }, body })), importedAs, (m) => {
      setRef("");
      setSelected(m.id);
    });
  }

  function publish(model: MachineModel) {
    const body = { name: registered.trim() };
    return act(
      () => call(api.POST("/api/v1/machine-models/{model_id}/publish", { params: { path: { model_id: model.id } }, body })),
      (done) => `Published as version ${done.version} of ${done.name} in the model registry.`,
    );
  }

  /** ``what``, then its message (``ok``, or made from its result), the machine and its versions loaded again, and
   * ``after`` with its result; an error is the message instead. */
  async function act<T>(what: () => Promise<T>, ok: string | ((result: T) => string), after?: (result: T) => void) {
    setBusy(true);
    setMessage(null);
    try {
      const result = await what();
      setMessage({ ok: true, text: typeof ok === "string" ? ok : ok(result) });
      onChanged();
      await load();
      after?.(result);
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  }

  const model = models?.find((m) => m.id === selected) ?? null;
  const result = finished?.result as { version?: number; machine_model_id?: number } | null | undefined;

  return (
    <Card withBorder data-testid="machine-models">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4">
          Sensor model
        </Title>
        <Text size="sm" c="gray.7" data-testid="active-model">
          {machine.active_model_id == null
            ? "no active model"
            : `running version ${models?.find((m) => m.id === machine.active_model_id)?.version ?? "?"} (#${machine.active_model_id})`}
        </Text>
      </Group>
      {error && <Alert color="red">{error}</Alert>}
      <Feedback msg={message} mb="xs" onClose={() => setMessage(null)} data-testid="models-message" />
      {engineer && (
        <Card withBorder mb="sm" data-testid="train-form">
          <Text fw={600} size="sm" mb={4}>
            Train a new version on this machine's stored readings
          </Text>
          <Group align="flex-end" gap="sm">
            <TextInput type="datetime-local" label="From" value={start} onChange={(e) => setStart(e.currentTarget.value)} data-testid="train-start" />
            <TextInput type="datetime-local" label="To" value={end} onChange={(e) => setEnd(e.currentTarget.value)} data-testid="train-end" />
            <Select
              label="Detector"
              data={[...new Set(DETECTORS.map((d) => d.group))].map((group) => ({
                group,
                items: DETECTORS.filter((d) => d.group === group).map((d) => ({ value: d.value, label: d.label })),
              }))}
              value={detector}
              onChange={(v) => {
                if (v) setDetector(v as Detector);
                setValues({});
              }}
              allowDeselect={false}
              w={270}
              data-testid="train-detector"
            />
            {spec.fields.map((f) => (
              <NumberInput
                key={`${detector}-${f.param}`}
                label={f.label}
                placeholder={f.placeholder}
                value={values[f.param] ?? ""}
                onChange={(v) => setValues((old) => ({ ...old, [f.param]: v }))}
                min={f.min}
                max={f.max}
                step={f.step}
                w={f.w}
              />
            ))}
            {chartRange && (
              <Button
                variant="subtle"
                size="sm"
                onClick={() => {
                  setStart(toLocalInput(chartRange[0] * 1000));
                  setEnd(toLocalInput((chartRange[1] + 60) * 1000));
                }}
              >
                Use the charts' range
              </Button>
            )}
            <Button onClick={train} disabled={running} loading={running} data-testid="train">
              Train
            </Button>
          </Group>
          <Text size="xs" c="gray.7" mt={4} data-testid="detector-hint">
            {spec.hint}
          </Text>
          {job && (
            <Stack gap={4} mt="sm" data-testid="train-progress">
              <Group justify="space-between">
                <Text fw={600} size="sm">
                  Job #{job.id}: {job.status}
                </Text>
                <Text size="sm" data-testid="job-message">
                  {FINISHED.includes(job.status) ? job.message : `Phase: ${job.message || "waiting"}`} · {Math.round(job.progress * 100)} %
                </Text>
              </Group>
              <Progress
                value={job.progress * 100}
                size="lg"
                striped={running}
                animated={running}
                color={job.status === "failed" ? "red" : job.status === "succeeded" ? "green" : "blue"}
                aria-label="sensor model training progress"
                data-testid="job-progress"
              />
              {running && (
                <Group>
                  <Button size="xs" variant="default" color="red" onClick={cancel}>
                    Cancel training
                  </Button>
                </Group>
              )}
              {finished?.status === "succeeded" && (
                <Alert color="green" title="Training finished" data-testid="train-done">
                  Version {result?.version} (#{result?.machine_model_id}) is ready: check its metrics below and activate it.
                </Alert>
              )}
              {finished?.status === "failed" && (
                <Alert color="red" title="Training failed" data-testid="train-failed">
                  {finished.error}
                </Alert>
              )}
              {finished?.status === "cancelled" && <Alert color="yellow">Training was cancelled.</Alert>}
            </Stack>
          )}
          <Text fw={600} size="sm" mt="md" mb={4}>
            Or import a model fitted with <code>linewatch sensors fit</code>
          </Text>
          <Group align="flex-end" gap="sm">
            <FileInput
              label="Model folder as a zip"
              placeholder="Choose a zip"
              accept=".zip,application/zip"
              value={upload}
              onChange={setUpload}
              clearable
              clearButtonProps={{ "aria-label": "Clear the model zip" }}
              w={260}
              data-testid="import-file"
            />
            <Button variant="default" onClick={importModel} disabled={!upload || busy} data-testid="import">
              Import
            </Button>
            <TextInput
              label="Or from the model registry"
              placeholder="NAME, NAME/3 or NAME@production"
              value={ref}
              onChange={(e) => setRef(e.currentTarget.value)}
              error={ref.trim() !== "" && !REF.test(ref.trim()) ? "NAME, NAME/3 or NAME@alias" : undefined}
              w={260}
              data-testid="registry-ref"
            />
            <Button variant="default" onClick={importRegistered} disabled={!REF.test(ref.trim()) || busy} data-testid="registry-import">
              Import
            </Button>
          </Group>
        </Card>
      )}
      {models && models.length === 0 && (
        <Text size="sm" c="gray.7" data-testid="no-models">
          No sensor model yet.{engineer ? " Train one on a time range of normal operation." : " An engineer trains one."}
        </Text>
      )}
      {models && models.length > 0 && (
        <>
          {engineer && (
            <Group mb="xs">
              <Button
                variant="default"
                size="xs"
                disabled={machine.previous_model_id == null}
                loading={busy}
                data-testid="rollback"
                onClick={() =>
                  confirm(`Roll ${name} back to model #${machine.previous_model_id}?`) &&
                  act(() => call(api.POST("/api/v1/machines/{name}/rollback", { params: { path: { name } } })), `${name} is back on model #${machine.previous_model_id}.`)
                }
              >
                Roll back
              </Button>
              <Text size="xs" c="gray.7">
                {machine.previous_model_id == null ? "nothing to roll back to" : `a rollback brings back #${machine.previous_model_id}`}
              </Text>
            </Group>
          )}
          <Table.ScrollContainer minWidth={640}>
            <Table highlightOnHover data-testid="models-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Version</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Detector</Table.Th>
                  <Table.Th>Time steps</Table.Th>
                  <Table.Th>Readings</Table.Th>
                  <Table.Th>Alert rate</Table.Th>
                  <Table.Th>Threshold</Table.Th>
                  <Table.Th>Trained on</Table.Th>
                  <Table.Th>Created</Table.Th>
                  {engineer && <Table.Th>Action</Table.Th>}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {models.map((m) => (
                  <Table.Tr key={m.id} bg={m.id === selected ? "var(--mantine-color-blue-0)" : undefined} data-testid="model-row" data-id={m.id}>
                    <Table.Td>
                      <button type="button" className="lw-link-button" aria-pressed={m.id === selected} onClick={() => setSelected(m.id)}>
                        v{m.version} (#{m.id})
                      </button>{" "}
                      {m.active && (
                        <Badge color="#237a35" variant="filled" size="sm">
                          active
                        </Badge>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Badge color={statusColor(m.status)} variant="filled" miw={80} style={{ overflow: "visible" }}>
                        {m.status}
                      </Badge>
                    </Table.Td>
                    <Table.Td>{m.method}</Table.Td>
                    <Table.Td>{num(m, "time_steps") ?? "–"}</Table.Td>
                    <Table.Td>{num(m, "readings") ?? "–"}</Table.Td>
                    <Table.Td>{fmtPct(num(m, "alert_rate"), 2)}</Table.Td>
                    <Table.Td>{fmtNum(num(m, "threshold"), 2)}</Table.Td>
                    <Table.Td>
                      {origin(m)}
                    </Table.Td>
                    <Table.Td>{fmtDateTime(m.created_at)}</Table.Td>
                    {engineer && (
                      <Table.Td>
                        <Button
                          size="xs"
                          disabled={m.status !== "ready" || m.active}
                          loading={busy}
                          data-testid="activate"
                          aria-label={`Activate version ${m.version}`}
                          onClick={() =>
                            confirm(`Activate version ${m.version} (#${m.id}) on ${name}? Its next readings are scored by it.`) &&
                            act(() => call(api.POST("/api/v1/machine-models/{model_id}/activate", { params: { path: { model_id: m.id } } })), `Version ${m.version} is now active on ${name}.`)
                          }
                        >
                          Activate
                        </Button>
                      </Table.Td>
                    )}
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </>
      )}
      {model && model.status === "ready" && (
        <div data-testid="model-metrics">
          <Group justify="space-between" mt="sm">
            <Text fw={600} size="sm">
              Version {model.version}: per sensor, on {model.metrics?.imported ? "this machine's newest readings" : "its training readings"}
            </Text>
            <Button
              size="xs"
              variant="default"
              onClick={() =>
                downloadFrom(`/api/v1/machine-models/${model.id}/files`, `linewatch-${name}-v${model.version}.zip`).catch((e) =>
                  setMessage({ ok: false, text: (e as Error).message }),
                )
              }
              data-testid="download-model"
            >
              Download its folder (zip)
            </Button>
          </Group>
          {engineer && !STREAMING.has(model.method) && (
            <Group gap="xs" mt={4} align="flex-end">
              <TextInput
                size="xs"
                label="Publish to the model registry as"
                placeholder="registered model name"
                value={registered}
                onChange={(e) => setRegistered(e.currentTarget.value)}
                w={240}
                data-testid="publish-name"
              />
              <Button size="xs" variant="default" onClick={() => publish(model)} disabled={!registered.trim() || busy} data-testid="publish">
                Publish
              </Button>
            </Group>
          )}
          <Text size="xs" c="gray.7" mb={4}>
            {model.metrics?.imported
              ? `imported from ${origin(model)}, fitted elsewhere${num(model, "training_rows") !== null ? ` on ${num(model, "training_rows")} rows` : ""} with threshold ${fmtNum(num(model, "threshold"), 4)}; ` +
                (num(model, "checked_on_time_steps")
                  ? `run over this machine's newest ${num(model, "checked_on_time_steps")} time steps: alert rate, the share of them that alerted with this sensor leading (false alarms, if they were normal)`
                  : "this machine had no readings to run it over yet")
              : !STREAMING.has(model.method)
                ? "alert rate: the share of the training time steps that alerted with this sensor leading, the false alarms to expect on normal readings"
                : "alert rate: how often the sensor alerted after its learning period, the false-alarm rate to expect on normal readings"}
            {num(model, "training_seconds") !== null ? ` · trained in ${num(model, "training_seconds")} s` : ""}
          </Text>
          <Table.ScrollContainer minWidth={480}>
            <Table data-testid="sensor-metrics">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Sensor</Table.Th>
                  <Table.Th>Readings</Table.Th>
                  <Table.Th>Mean</Table.Th>
                  <Table.Th>Std</Table.Th>
                  <Table.Th>Alert rate</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {perSensor(model).map((s) => (
                  <Table.Tr key={s.sensor}>
                    <Table.Td>{s.sensor}</Table.Td>
                    <Table.Td>{s.readings ?? "–"}</Table.Td>
                    <Table.Td>{fmtNum(s.mean, 3)}</Table.Td>
                    <Table.Td>{fmtNum(s.std, 3)}</Table.Td>
                    <Table.Td>{fmtPct(s.alert_rate, 2)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </div>
      )}
      {model && model.status === "failed" && (
        <Text size="sm" c="red.9" mt="sm">
          Version {model.version} failed to train.
        </Text>
      )}
    </Card>
  );
}
