import {
  Alert,
  Badge,
  Button,
  Card,
  FileInput,
  Group,
  Modal,
  NumberInput,
  Progress,
  SegmentedControl,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { api, call, can, postForm, type Job } from "../api/client";
import { fmtDateTime, fmtNum, fmtPct } from "../lib/format";
import type { Machine, MachineModel } from "../lib/machines";
import {
  type Maintenance,
  type MaintenanceEvent,
  MAINTENANCE_KINDS,
  type Unit,
  addPrediction,
  fmtRul,
  fromEvent,
  headline,
  ruleOf,
} from "../lib/maintenance";
import { useSession } from "../lib/session";
import { FINISHED, useFollow } from "../lib/useFollow";
import { MaintenanceChart } from "./MaintenanceChart";
import { Feedback } from "./Feedback";

/** The machine's `kind` job followed until it ends (one already running when the page opens too); `onFinished` gets
 * the finished job once. */
function useJob(kind: string, machine: string, enabled: boolean, onFinished: (j: Job) => void) {
  const { job, follow, adopt } = useFollow(onFinished, 2000);
  useEffect(() => {
    if (!enabled) return;
    call(api.GET("/api/v1/jobs", { params: { query: { active: true } } })).then(
      (jobs) => {
        const mine = jobs.find((j) => j.kind === kind && (j.params as { machine?: string }).machine === machine);
        if (mine) adopt(mine);
      },
      () => {},
    );
  }, [enabled, kind, machine, adopt]);
  return { job, start: follow };
}

function cycles(v: number | null): string {
  return v == null ? "–" : String(Number(v.toPrecision(3)));
}

function metric(m: MachineModel, key: string): number | null {
  const v = (m.metrics as Record<string, unknown> | null)?.[key];
  return typeof v === "number" ? v : null;
}

function TrainForm({ machine, onStarted }: { machine: Machine; onStarted: (j: Job) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [target, setTarget] = useState<string>("rul");
  const [cycle, setCycle] = useState<number | string>(3600);
  const [below, setBelow] = useState<number | string>(24);
  const [above, setAbove] = useState<number | string>(0.5);
  const [engine, setEngine] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setError(null);
    if (!file) {
      setError("Choose a run-to-failure history file (CSV or Parquet).");
      return;
    }
    let extra: Record<string, unknown> = {};
    if (engine.trim()) {
      try {
        extra = JSON.parse(engine);
        if (typeof extra !== "object" || extra === null || Array.isArray(extra)) throw new Error();
      } catch {
        setError('Engine parameters must be a JSON object, e.g. {"epochs": 5}.');
        return;
      }
    }
    const params: Record<string, unknown> = { ...extra, target, cycle_s: Number(cycle) };
    if (target === "rul" && below !== "") params.alert_below_s = Number(below) * 3600;
    if (target === "failure" && above !== "") params.alert_above = Number(above);
    const form = new FormData();
    form.append("file", file);
    form.append("params", JSON.stringify(params));
    setBusy(true);
    try {
      onStarted(await postForm<Job>(`/api/v1/machines/${encodeURIComponent(machine.name)}/maintenance/train-file`, form));
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} data-testid="maintenance-train-form" aria-label="Train a maintenance model">
      <Text fw={600} size="sm" mb={4}>
        Train a maintenance model on a run-to-failure history
      </Text>
      <Text size="xs" c="gray.7" mb="xs">
        CSV or Parquet with columns unit, cycle and one per sensor, named like this machine's sensors ({machine.sensors.map((s) => s.name).join(", ") || "none yet"}).
      </Text>
      <Group align="flex-end" gap="sm">
        <FileInput
          label="History file"
          placeholder="Choose a file"
          accept=".csv,.parquet,.pq,text/csv"
          value={file}
          onChange={setFile}
          clearable
          clearButtonProps={{ "aria-label": "Clear the history file" }}
          w={220}
          data-testid="maintenance-file"
        />
        <Select
          label="Predict"
          data={[
            { value: "rul", label: "remaining useful life" },
            { value: "failure", label: "failure probability" },
          ]}
          value={target}
          onChange={(v) => setTarget(v ?? "rul")}
          allowDeselect={false}
          w={200}
          data-testid="maintenance-target"
        />
        <NumberInput label="Seconds per cycle" value={cycle} onChange={setCycle} min={1} w={140} data-testid="maintenance-cycle" />
        {target === "rul" ? (
          <NumberInput label="Alert under (hours)" value={below} onChange={setBelow} min={0} step={1} decimalScale={3} w={150} data-testid="maintenance-below" />
        ) : (
          <NumberInput label="Alert over (probability)" value={above} onChange={setAbove} min={0} max={1} step={0.05} decimalScale={3} w={170} />
        )}
        <TextInput label="Engine parameters (JSON)" placeholder='e.g. {"epochs": 5}' value={engine} onChange={(e) => setEngine(e.currentTarget.value)} w={220} data-testid="maintenance-engine" />
        <Button type="submit" loading={busy} data-testid="maintenance-train">
          Train
        </Button>
      </Group>
      {error && (
        <Alert color="red" mt="xs" data-testid="maintenance-train-error">
          {error}
        </Alert>
      )}
    </form>
  );
}

/** The machine's predictive maintenance: RUL (with its interval) or failure risk over time and now, live; engineers
 * train models on an uploaded history and activate them; operators record maintenance done. */
export function MaintenanceSection({ machine, onChanged }: { machine: Machine; onChanged: () => void }) {
  const { me, stream } = useSession();
  const engineer = can(me.role, "engineer");
  const operator = can(me.role, "operator");
  const name = machine.name;
  const [data, setData] = useState<Maintenance | null>(null);
  const [models, setModels] = useState<MachineModel[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [unit, setUnit] = useState<Unit>("hours");
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [finished, setFinished] = useState<Job | null>(null);
  const state = useSyncExternalStore(stream.subscribeState, stream.getState);
  const current = useRef<Maintenance | null>(null);
  current.current = data;

  const load = useCallback(async () => {
    try {
      const [d, ms] = await Promise.all([
        call(api.GET("/api/v1/machines/{name}/maintenance", { params: { path: { name } } })),
        call(api.GET("/api/v1/machines/{name}/models", { params: { path: { name } } })),
      ]);
      setData(d);
      setModels(ms.filter((m) => MAINTENANCE_KINDS.includes(m.kind)));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [name]);
  useEffect(() => {
    load();
  }, [load, machine.maintenance_model_id, machine.life_start]);
  useEffect(() => {
    if (state === "open" && stream.wasLost) load();
  }, [state, stream, load]);

  useEffect(() => {
    const onEvent = (e: MaintenanceEvent) => {
      if (e.machine !== name) return;
      // the service publishes the newest prediction of each batch: when cycles were skipped (readings imported, a
      // reconnect), the history is fetched again
      const d = current.current;
      const last = d?.predictions.at(-1);
      if (d && (!d.model || d.model.id === e.model_id) && e.cycle > (last && last.cycle <= e.cycle ? last.cycle : 0) + 1) {
        load();
        return;
      }
      setData((d) => {
        if (!d) return d;
        // a prediction of another model (one just activated): the page reloads the history instead
        if (d.model && e.model_id != null && e.model_id !== d.model.id) return d;
        return { ...d, cycle_s: d.cycle_s ?? e.cycle_s, predictions: addPrediction(d.predictions, fromEvent(e)) };
      });
    };
    const onChange = (e: { machine?: string; machines?: string[] }) => {
      if (e.machine === name || e.machines?.includes(name)) load();
    };
    stream.maintenance.add(onEvent);
    stream.machineChanges.add(onChange);
    return () => {
      stream.maintenance.delete(onEvent);
      stream.machineChanges.delete(onChange);
    };
  }, [stream, name, load]);

  const { job, start } = useJob("maintenance_train", name, engineer, (j) => {
    setFinished(j);
    load();
  });

  const rule = useMemo(() => ruleOf(data?.model, data?.cycle_s), [data?.model, data?.cycle_s]);
  const points = data?.predictions ?? [];
  const now = headline(points, rule);
  const running = job !== null && !FINISHED.includes(job.status);
  const result = finished?.result as { version?: number; machine_model_id?: number } | null | undefined;

  async function act(what: () => Promise<unknown>, ok: string) {
    setBusy(true);
    setMessage(null);
    try {
      await what();
      setMessage({ ok: true, text: ok });
      onChanged();
      await load();
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card withBorder data-testid="maintenance" component="section" aria-labelledby="maintenance-title">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4" id="maintenance-title">
          Maintenance
        </Title>
        <Group gap="sm">
          <Text size="sm" c="gray.7" data-testid="maintenance-model">
            {data?.model ? `${data.model.kind === "failure" ? "failure risk" : "RUL"} model v${data.model.version} (#${data.model.id})` : "no maintenance model"}
            {machine.life_start ? ` · life since ${fmtDateTime(machine.life_start)}` : ""}
          </Text>
          {operator && (
            <Button size="xs" variant="default" onClick={() => setConfirming(true)} data-testid="maintenance-done">
              Maintenance done…
            </Button>
          )}
        </Group>
      </Group>
      {error && <Alert color="red">{error}</Alert>}
      <Feedback msg={message} mb="xs" onClose={() => setMessage(null)} data-testid="maintenance-message" />

      <div role="status" aria-live="polite" data-testid="maintenance-headline" data-kind={now.kind} data-alerting={now.kind !== "none" && now.alerting ? "yes" : "no"}>
        {now.kind === "none" && (
          <Text size="sm" c="gray.7">
            {data?.model
              ? "No prediction yet: one comes at the end of each completed cycle of readings."
              : engineer
                ? "No active maintenance model: train one on a run-to-failure history below and activate it."
                : "No active maintenance model: an engineer trains one."}
          </Text>
        )}
        {now.kind === "rul" && (
          <Group gap="sm" align="baseline">
            <Text fw={700} size="xl" c={now.alerting ? "red.9" : undefined}>
              RUL {fmtRul(now.rul, rule.cycle_s)}
            </Text>
            <Text size="sm">
              interval {cycles(now.low)} to {cycles(now.high)} cycles · cycle {now.cycle} at {fmtDateTime(now.time)}
            </Text>
            {now.alerting ? (
              <Badge color="red.9" variant="filled">
                under threshold
              </Badge>
            ) : (
              <Badge color="#237a35" variant="filled">
                ok
              </Badge>
            )}
          </Group>
        )}
        {now.kind === "failure" && (
          <Group gap="sm" align="baseline">
            <Text fw={700} size="xl" c={now.alerting ? "red.9" : undefined}>
              Failure risk {fmtPct(now.probability, 1)}
            </Text>
            <Text size="sm">
              cycle {now.cycle} at {fmtDateTime(now.time)}
            </Text>
            <Badge color={now.alerting ? "red.9" : "#237a35"} variant="filled">
              {now.alerting ? "over threshold" : "ok"}
            </Badge>
          </Group>
        )}
      </div>

      {points.length > 0 && (
        <div data-testid="maintenance-chart" data-points={points.length}>
          <Group justify="space-between" mt="xs">
            <Text size="xs" c="gray.7">
              {rule.target === "rul"
                ? `one prediction per cycle (${rule.cycle_s} s); band: the interval; dashed red: the alert threshold${rule.alert_below_s != null ? ` (${fmtNum(rule.alert_below_s / 3600, 3)} h)` : ""}`
                : `one prediction per cycle (${rule.cycle_s} s); dashed red: the alert level ${rule.alert_above ?? "–"}`}
            </Text>
            {rule.target === "rul" && (
              <SegmentedControl
                size="xs"
                aria-label="Unit of the remaining useful life"
                value={unit}
                onChange={(v) => setUnit(v as Unit)}
                data={[
                  { value: "hours", label: "hours" },
                  { value: "cycles", label: "cycles" },
                ]}
                data-testid="maintenance-unit"
              />
            )}
          </Group>
          <MaintenanceChart points={points} rule={rule} unit={unit} />
        </div>
      )}

      {engineer && (
        <Card withBorder mt="sm">
          <TrainForm
            machine={machine}
            onStarted={(j) => {
              setFinished(null);
              start(j);
            }}
          />
          {job && (
            <Stack gap={4} mt="sm" data-testid="maintenance-progress">
              <Group justify="space-between">
                <Text fw={600} size="sm">
                  Job #{job.id}: {job.status}
                </Text>
                <Text size="sm">
                  {FINISHED.includes(job.status) ? job.message : `Phase: ${job.message || "waiting"}`} · {Math.round(job.progress * 100)} %
                </Text>
              </Group>
              <Progress
                value={job.progress * 100}
                size="lg"
                striped={running}
                animated={running}
                color={job.status === "failed" ? "red" : job.status === "succeeded" ? "green" : "blue"}
                aria-label="maintenance model training progress"
              />
              {finished?.status === "succeeded" && (
                <Alert color="green" title="Training finished" data-testid="maintenance-train-done">
                  Version {result?.version} (#{result?.machine_model_id}) is ready: activate it below to get predictions.
                </Alert>
              )}
              {finished?.status === "failed" && (
                <Alert color="red" title="Training failed" data-testid="maintenance-train-failed">
                  {finished.error}
                </Alert>
              )}
              {finished?.status === "cancelled" && <Alert color="yellow">Training was cancelled.</Alert>}
            </Stack>
          )}
        </Card>
      )}

      {models && models.length > 0 && (
        <Table.ScrollContainer minWidth={560} mt="sm">
          <Table data-testid="maintenance-models">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Version</Table.Th>
                <Table.Th>Kind</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Trained on</Table.Th>
                <Table.Th>Training time</Table.Th>
                <Table.Th>Created</Table.Th>
                {engineer && <Table.Th>Action</Table.Th>}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {models.map((m) => (
                <Table.Tr key={m.id} data-testid="maintenance-model-row" data-id={m.id}>
                  <Table.Td>
                    v{m.version} (#{m.id}){" "}
                    {m.id === machine.maintenance_model_id && (
                      <Badge color="#237a35" variant="filled" size="sm">
                        active
                      </Badge>
                    )}
                  </Table.Td>
                  <Table.Td>{m.kind === "rul" ? "RUL" : "failure risk"}</Table.Td>
                  <Table.Td>
                    <Badge color={m.status === "ready" ? "#237a35" : m.status === "failed" ? "red.9" : "blue.9"} variant="filled" miw={80} style={{ overflow: "visible" }}>
                      {m.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{"file" in m.source ? String(m.source.file) : "–"}</Table.Td>
                  <Table.Td>{metric(m, "training_seconds") != null ? `${metric(m, "training_seconds")} s` : "–"}</Table.Td>
                  <Table.Td>{fmtDateTime(m.created_at)}</Table.Td>
                  {engineer && (
                    <Table.Td>
                      <Button
                        size="xs"
                        disabled={m.status !== "ready" || m.id === machine.maintenance_model_id}
                        loading={busy}
                        aria-label={`Activate maintenance version ${m.version}`}
                        data-testid="maintenance-activate"
                        onClick={() =>
                          act(
                            () => call(api.POST("/api/v1/machine-models/{model_id}/activate", { params: { path: { model_id: m.id } } })),
                            `Maintenance version ${m.version} now predicts for ${name}.`,
                          )
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
      )}

      <Modal opened={confirming} onClose={() => setConfirming(false)} title={`Record maintenance on ${name}`} closeButtonProps={{ "aria-label": "Close" }} data-testid="maintenance-confirm">
        <Text size="sm" mb="md">
          The machine's life starts again now: cycles count from now and its open maintenance alerts close. Record it only once the maintenance is done.
        </Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={() => setConfirming(false)}>
            Cancel
          </Button>
          <Button
            color="blue.8"
            loading={busy}
            data-testid="maintenance-done-confirm"
            onClick={() => {
              setConfirming(false);
              act(
                () => call(api.POST("/api/v1/machines/{name}/maintenance/done", { params: { path: { name } }, body: {} })),
                `Maintenance recorded on ${name}: a new life starts now.`,
              );
            }}
          >
            Record maintenance
          </Button>
        </Group>
      </Modal>
    </Card>
  );
}
