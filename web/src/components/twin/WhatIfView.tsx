import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Checkbox,
  Grid,
  Group,
  NumberInput,
  Progress,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Title,
} from "@mantine/core";
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, call, can } from "../../api/client";
import { fmtDateTime } from "../../lib/format";
import type { JobEvent } from "../../lib/live";
import { navigate } from "../../lib/router";
import { useSession } from "../../lib/session";
import { FINISHED, useFollow } from "../../lib/useFollow";
import {
  type LineModelDoc,
  type PlanSection,
  type ScenarioForm,
  type Simulation,
  bottleneckOf,
  comparison,
  emptyForm,
  fmtCi,
  formOverrides,
  jobsAtRisk,
  machineOps,
  mergeOverrides,
  parseOverrides,
  planOf,
  planRows,
  plannable,
  summariesOf,
  twin,
  unitLabel,
} from "../../lib/twin";
import { CompareChart, ScenarioLegend } from "./Bars";

const blank = (v: number | string): number | "" => (v === "" || v === undefined ? "" : Number(v));

/** The common changes as a form: copies of a machine, buffer capacities, failure rates, defect rates, the mix. */
function ScenarioFields({ doc, form, setForm }: { doc: LineModelDoc; form: ScenarioForm; setForm: (f: ScenarioForm) => void }) {
  const m = doc.model;
  const set = <K extends keyof ScenarioForm>(k: K, key: string, v: ScenarioForm[K][string]) => setForm({ ...form, [k]: { ...form[k], [key]: v } });
  return (
    <Stack gap="sm">
      <Table data-testid="scenario-machines">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Machine</Table.Th>
            <Table.Th>Machines to add (in parallel)</Table.Th>
            <Table.Th>Failure rate ×</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {m.machines.map((mm) => (
            <Table.Tr key={mm.name}>
              <Table.Td>
                {mm.name}{" "}
                <Text span size="xs" c="dimmed">
                  {machineOps(mm).join(", ")}
                </Text>
              </Table.Td>
              <Table.Td>
                <NumberInput
                  aria-label={`Machines like ${mm.name} to add`}
                  value={form.extraMachines[mm.name] ?? 0}
                  onChange={(v) => set("extraMachines", mm.name, Number(v) || 0)}
                  min={0}
                  max={5}
                  w={90}
                  size="xs"
                />
              </Table.Td>
              <Table.Td>
                {mm.failures && (Array.isArray(mm.failures) ? mm.failures.length : 1) ? (
                  <NumberInput
                    aria-label={`Failure rate of ${mm.name}, times`}
                    placeholder="1"
                    value={form.failureFactor[mm.name] ?? ""}
                    onChange={(v) => set("failureFactor", mm.name, blank(v))}
                    min={0.01}
                    max={100}
                    step={0.1}
                    decimalScale={2}
                    w={90}
                    size="xs"
                  />
                ) : (
                  <Text size="xs" c="dimmed">
                    no failures modelled
                  </Text>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {(m.buffers?.length ?? 0) > 0 && (
        <Group gap="sm" data-testid="scenario-buffers">
          {m.buffers!.map((b) => (
            <NumberInput
              key={b.name}
              label={`Capacity of ${b.name}`}
              placeholder={b.capacity == null ? "no limit" : String(b.capacity)}
              value={form.bufferCapacity[b.name] ?? ""}
              onChange={(v) => set("bufferCapacity", b.name, blank(v))}
              min={1}
              max={1_000_000}
              w={170}
              size="xs"
            />
          ))}
        </Group>
      )}
      {(m.inspections?.length ?? 0) > 0 && (
        <Group gap="sm">
          {m.inspections!.map((i) => (
            <NumberInput
              key={i.machine}
              label={`Defect rate at ${i.machine} (0–1)`}
              placeholder={String(i.defect_rate)}
              value={form.defectRate[i.machine] ?? ""}
              onChange={(v) => set("defectRate", i.machine, blank(v))}
              min={0}
              max={1}
              step={0.005}
              decimalScale={4}
              w={200}
              size="xs"
            />
          ))}
        </Group>
      )}
      {(m.products?.length ?? 0) > 1 && (
        <Group gap="sm">
          {m.products!.map((p) => (
            <NumberInput
              key={p.name}
              label={`Mix share of ${p.name}`}
              placeholder={String(p.mix ?? 1)}
              value={form.mix[p.name] ?? ""}
              onChange={(v) => set("mix", p.name, blank(v))}
              min={0}
              step={0.1}
              decimalScale={3}
              w={160}
              size="xs"
            />
          ))}
        </Group>
      )}
    </Stack>
  );
}

/** The comparison: the charts side by side with their intervals, and the same figures in a table with the
 * difference to the base. */
export function Comparison({ result }: { result: unknown }) {
  const summaries = useMemo(() => summariesOf(result), [result]);
  const isPlan = planOf(result) !== null;
  const unit = unitLabel(planOf(result)?.time_unit_s ?? 60);
  const metrics = useMemo(() => comparison(summaries, unit), [summaries, unit]);
  if (!summaries.length) return <Text size="sm">The simulation gave no scenario results.</Text>;
  const names = summaries.map((s) => s.scenario);
  const base = metrics.map((m) => m.groups);
  return (
    <Stack data-testid="comparison">
      <Text size="sm" data-testid="comparison-meta">
        {summaries[0].replications} replication{summaries[0].replications === 1 ? "" : "s"}{" "}
        {isPlan ? "of the plan" : `of ${Number(summaries[0].hours.toPrecision(3))} h`} per scenario (the same random numbers in each). Bottleneck: {summaries.map((s) => `${s.scenario}: ${bottleneckOf(s) ?? "–"}`).join("; ")}.
        {summaries[0].replications < 2 ? " One replication gives no confidence interval." : ""}
      </Text>
      <ScenarioLegend scenarios={names} />
      <SimpleGrid cols={{ base: 1, xl: 2 }}>
        {metrics.map((m) => (
          <Card withBorder key={m.key}>
            <Title order={4} size="h6" mb={4}>
              {m.title} ({m.unit})
            </Title>
            <CompareChart metric={m} scenarios={names} />
          </Card>
        ))}
      </SimpleGrid>
      <Card withBorder>
        <Title order={4} size="h6" mb={4}>
          The figures (mean [95 % interval])
        </Title>
        <Table.ScrollContainer minWidth={560}>
          <Table data-testid="comparison-table" striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Figure</Table.Th>
                {names.map((n) => (
                  <Table.Th key={n}>{n}</Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {metrics.flatMap((m, mi) =>
                base[mi].map((g) => (
                  <Table.Tr key={`${m.key}:${g.label}`}>
                    <Table.Td>
                      {m.groups.length > 1 ? `${m.title.replace(" per machine", "")}: ${g.label}` : m.title} ({m.unit})
                      {g.bottleneck?.length ? (
                        <Badge ml={6} size="xs" color="#a34100" variant="filled">
                          bottleneck in {g.bottleneck.join(", ")}
                        </Badge>
                      ) : null}
                    </Table.Td>
                    {g.bars.map((b, i) => {
                      const d = i > 0 && b.mean != null && g.bars[0].mean != null ? b.mean - g.bars[0].mean : null;
                      return (
                        <Table.Td key={b.scenario}>
                          {fmtCi(b)}
                          {d != null && (
                            <Text span size="xs" c="dimmed">
                              {" "}
                              ({d >= 0 ? "+" : ""}
                              {Number(d.toPrecision(3))})
                            </Text>
                          )}
                        </Table.Td>
                      );
                    })}
                  </Table.Tr>
                )),
              )}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Card>
    </Stack>
  );
}

/** A schedule's plan on the simulated line: the plan's figures beside the simulated ones (mean [95 % interval]), and
 * the jobs at risk of being late. */
export function PlanResult({ plan }: { plan: PlanSection }) {
  const rows = planRows(plan);
  const risky = jobsAtRisk(plan);
  const unit = unitLabel(plan.time_unit_s);
  return (
    <Card withBorder data-testid="plan-result" mb="sm">
      <Title order={4} size="h6" mb={4}>
        How schedule #{plan.schedule_id} “{plan.schedule}” holds up on the line
      </Title>
      <Text size="sm" mb="xs">
        Each machine works through its planned operations in the plan's order, with the model's failures, shifts and inspections
        {plan.release === "earliest" ? "; jobs start at their release" : "; jobs start at their planned start"}. In{" "}
        {plan.late_share > 0 ? `${Math.round(plan.late_share * 100)} % of the replications at least one job is late.` : "no replication is a job late."}
      </Text>
      <Table data-testid="plan-table" striped>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Figure</Table.Th>
            <Table.Th>Plan</Table.Th>
            <Table.Th>Simulated (mean [95 % interval])</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map((r) => (
            <Table.Tr key={r.key}>
              <Table.Td>
                {r.title} ({r.unit})
              </Table.Td>
              <Table.Td>{Number(r.planned.toPrecision(4))}</Table.Td>
              <Table.Td>
                {fmtCi(r.simulated)}
                {r.change != null && Math.abs(r.change) >= 0.0005 && (
                  <Text span size="xs" c="dimmed">
                    {" "}
                    ({r.change >= 0 ? "+" : ""}
                    {(r.change * 100).toFixed(1)} %)
                  </Text>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <Title order={5} size="h6" mt="sm" mb={4}>
        Jobs at risk
      </Title>
      {risky.length === 0 ? (
        <Text size="sm" data-testid="plan-no-late">
          Every job ends as planned or earlier in every replication.
        </Text>
      ) : (
        <Table data-testid="plan-late-jobs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Job</Table.Th>
              <Table.Th>Due ({unit})</Table.Th>
              <Table.Th>Planned end</Table.Th>
              <Table.Th>Simulated end</Table.Th>
              <Table.Th>Later than planned by</Table.Th>
              <Table.Th>Late in</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {risky.slice(0, 20).map((j) => (
              <Table.Tr key={j.job}>
                <Table.Td>{j.job}</Table.Td>
                <Table.Td>{j.due ?? "–"}</Table.Td>
                <Table.Td>{j.planned_end}</Table.Td>
                <Table.Td>{fmtCi({ scenario: j.job, mean: j.end.mean, low: j.end.ci_low, high: j.end.ci_high })}</Table.Td>
                <Table.Td>{fmtCi({ scenario: j.job, mean: j.lateness.mean, low: j.lateness.ci_low, high: j.lateness.ci_high })}</Table.Td>
                <Table.Td>{Math.round(j.late_share * 100)} % of runs</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Card>
  );
}

/** What-if: the line model as the base and one scenario of changes (a form for the common ones, JSON for any), run
 * as replications in a background job followed live, then compared side by side. */
export function WhatIfView({ line, doc, sim }: { line: string; doc: LineModelDoc; sim: number | null }) {
  const { me } = useSession();
  const engineer = can(me.role, "engineer");
  const [name, setName] = useState("what-if");
  const [form, setForm] = useState<ScenarioForm>(emptyForm);
  const [raw, setRaw] = useState("");
  const [hours, setHours] = useState<number | string>(8);
  const [replications, setReplications] = useState<number | string>(5);
  const [seed, setSeed] = useState<number | string>(0);
  const [fromLive, setFromLive] = useState(false);
  const [scheduleId, setScheduleId] = useState<string | null>(null);
  const [schedules, setSchedules] = useState<{ value: string; label: string }[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [current, setCurrent] = useState<Simulation | null>(null);
  const [recent, setRecent] = useState<Simulation[] | null>(null);
  // the simulation's job, live; its end loads the result
  const { job, running, follow, reset } = useFollow(() => {
    if (sim != null) loadSim(sim);
  }, 2000);

  const parsed = useMemo(() => parseOverrides(raw), [raw]);
  const overrides = useMemo(() => ("value" in parsed ? mergeOverrides(formOverrides(doc.model, form), parsed.value) : null), [parsed, doc.model, form]);

  const loadRecent = useCallback(() => {
    twin.simulations(line).then(setRecent, () => setRecent([]));
  }, [line]);
  useEffect(() => loadRecent(), [loadRecent]);
  useEffect(() => {
    if (!engineer) return;
    call(api.GET("/api/v1/schedules")).then(
      (list) => setSchedules(plannable(list)),
      () => setSchedules([]),
    );
  }, [engineer]);

  const loadSim = useCallback(
    async (id: number) => {
      try {
        const s = await twin.simulation(line, id);
        setCurrent(s);
        if (!FINISHED.includes(s.status)) {
          follow({ id: s.job_id ?? s.id, kind: "simulation", status: s.status as JobEvent["status"], progress: s.progress ?? 0, message: s.message ?? "" });
        } else {
          loadRecent();
        }
      } catch (e) {
        setError((e as Error).message);
      }
    },
    [line, loadRecent, follow],
  );
  useEffect(() => {
    setCurrent(null);
    reset();
    if (sim != null) loadSim(sim);
  }, [sim, loadSim, reset]);

  async function run(e: React.FormEvent) {
    e.preventDefault();
    setError(null);
    if (!overrides) return setError("The raw overrides are not valid JSON; fix them or clear the box.");
    const planOnly = scheduleId !== null && Object.keys(overrides).length === 0; // the plan on the model as it is
    if (!planOnly && !name.trim()) return setError("Give the scenario a name.");
    if (!planOnly && name.trim() === "base") return setError("“base” is the line model itself; name the scenario otherwise.");
    setBusy(true);
    try {
      const r = await twin.simulate(line, {
        hours: Number(hours),
        replications: Number(replications),
        seed: Number(seed),
        from_live: fromLive,
        scenarios: planOnly ? [] : [{ name: name.trim(), overrides }],
        schedule_id: scheduleId === null ? null : Number(scheduleId),
      });
      follow({ id: r.job_id, kind: "simulation", status: "queued", progress: 0, message: "queued" });
      navigate(`/line/${encodeURIComponent(line)}/whatif?sim=${r.id}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const empty = overrides !== null && Object.keys(overrides).length === 0;
  const plan = current?.status === "succeeded" ? planOf(current.result) : null;

  return (
    <Stack data-testid="whatif-view">
      {engineer ? (
        <form onSubmit={run} aria-label="What-if simulation">
          <Grid>
            <Grid.Col span={{ base: 12, lg: 4 }}>
              <Card withBorder h="100%" data-testid="scenario-base">
                <Title order={3} size="h5" mb="xs">
                  Base: the line model
                </Title>
                <Text size="sm">
                  {line}'s model, version {doc.version}: {doc.model.machines.length} machines, {doc.model.buffers?.length ?? 0} buffers,{" "}
                  {doc.model.products?.length ?? 1} product{(doc.model.products?.length ?? 1) === 1 ? "" : "s"}
                  {doc.model.shifts?.length ? `, ${doc.model.shifts.length} shifts` : ""}.
                </Text>
                <Text size="sm" c="dimmed" mt="xs">
                  Both run with the same random numbers, so their difference is the scenario's.
                </Text>
                <Stack gap="xs" mt="md">
                  <Group gap="sm">
                    <NumberInput label="Hours" value={hours} onChange={setHours} min={0.1} max={24 * 366} w={100} data-testid="sim-hours" />
                    <NumberInput label="Replications" value={replications} onChange={setReplications} min={1} max={500} w={120} data-testid="sim-replications" />
                    <NumberInput label="Seed" value={seed} onChange={setSeed} min={0} w={100} data-testid="sim-seed" />
                  </Group>
                  <Checkbox
                    label="Start from the live state (machines down, buffer levels now)"
                    checked={fromLive}
                    onChange={(e) => setFromLive(e.currentTarget.checked)}
                    data-testid="sim-from-live"
                  />
                  <Select
                    label="Run a schedule's plan"
                    description="Instead of the product mix: the plan's jobs on the line, each machine in the plan's order (a scenario is optional)."
                    placeholder={schedules.length ? "no: the product mix" : "no solved schedule"}
                    data={schedules}
                    value={scheduleId}
                    onChange={setScheduleId}
                    clearable
                    disabled={!schedules.length}
                    data-testid="sim-schedule"
                  />
                </Stack>
              </Card>
            </Grid.Col>
            <Grid.Col span={{ base: 12, lg: 8 }}>
              <Card withBorder data-testid="scenario-editor">
                <Group justify="space-between" mb="xs">
                  <Title order={3} size="h5">
                    Scenario
                  </Title>
                  <TextInput aria-label="Scenario name" value={name} onChange={(e) => setName(e.currentTarget.value)} w={220} data-testid="scenario-name" />
                </Group>
                <ScenarioFields doc={doc} form={form} setForm={setForm} />
                <Textarea
                  mt="sm"
                  label="More overrides (JSON)"
                  description='Any change of the model, merged over the form: lists by name (machines, buffers, products, shifts; inspections by machine), "like" copies an entry, "remove": true deletes one, "mix" sets shares.'
                  placeholder='{"machines": [{"name": "capper", "cycle_time_s": 5}]}'
                  value={raw}
                  onChange={(e) => setRaw(e.currentTarget.value)}
                  autosize
                  minRows={2}
                  maxRows={10}
                  classNames={{ input: "lw-json" }}
                  error={"error" in parsed ? parsed.error : undefined}
                  data-testid="scenario-raw"
                />
                <Text size="sm" fw={600} mt="sm" id="lw-overrides-label">
                  The scenario's overrides
                </Text>
                <pre className="lw-pre" data-testid="scenario-overrides" aria-labelledby="lw-overrides-label" tabIndex={0}>
                  {overrides ? JSON.stringify(overrides, null, 2) : "–"}
                </pre>
                {empty && (
                  <Text size="xs" c="dimmed">
                    No change yet: the scenario would be the base again.
                  </Text>
                )}
              </Card>
            </Grid.Col>
          </Grid>
          {error && (
            <Alert color="red" mt="sm" data-testid="sim-error">
              {error}
            </Alert>
          )}
          <Group mt="sm">
            <Button type="submit" loading={busy} disabled={running || !overrides} data-testid="sim-run">
              {scheduleId !== null && empty ? "Run the plan" : "Run and compare"}
            </Button>
          </Group>
        </form>
      ) : (
        <Alert color="blue" data-testid="whatif-viewer">
          Engineers run what-if simulations here. You can read the results of earlier runs below.
        </Alert>
      )}

      {job && (current?.id === sim || running) && (
        <Card withBorder data-testid="sim-progress">
          <Group justify="space-between">
            <Text size="sm" fw={600}>
              Simulation #{sim}: {job.status}
            </Text>
            <Text size="sm">
              {job.message} · {Math.round(job.progress * 100)} %
            </Text>
          </Group>
          <Progress
            value={job.progress * 100}
            striped={running}
            animated={running}
            color={job.status === "failed" ? "red" : job.status === "succeeded" ? "green" : "blue"}
            aria-label="Simulation progress"
            mt={4}
          />
        </Card>
      )}
      {current && current.status === "failed" && (
        <Alert color="red" title={`Simulation #${current.id} failed`} data-testid="sim-failed">
          {current.error ?? current.message ?? "The simulation failed."}
        </Alert>
      )}
      {current && current.status === "succeeded" && (
        <Card withBorder>
          <Title order={3} size="h5" mb="xs">
            Simulation #{current.id}
            {plan ? `: schedule #${plan.schedule_id}'s plan` : ""}
            {current.request?.scenarios?.length ? `${plan ? "," : ":"} base vs ${current.request.scenarios.map((s) => s.name).join(", ")}` : ""}
          </Title>
          {plan && <PlanResult plan={plan} />}
          <Comparison result={current.result} />
        </Card>
      )}

      <Card withBorder>
        <Title order={3} size="h5" mb="xs">
          Earlier simulations
        </Title>
        {recent === null ? (
          <Text size="sm" c="dimmed">
            Loading…
          </Text>
        ) : recent.length === 0 ? (
          <Text size="sm" c="dimmed" data-testid="no-simulations">
            None yet.{engineer ? " Run one above." : ""}
          </Text>
        ) : (
          <Table data-testid="simulation-list">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Simulation</Table.Th>
                <Table.Th>Scenarios</Table.Th>
                <Table.Th>Run</Table.Th>
                <Table.Th>Status</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {recent.map((s) => (
                <Table.Tr key={s.id}>
                  <Table.Td>
                    <Anchor href={`#/line/${encodeURIComponent(line)}/whatif?sim=${s.id}`} aria-current={s.id === sim ? "page" : undefined}>
                      #{s.id}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>
                    {["base", ...(s.request?.scenarios ?? []).map((x) => x.name)].join(" vs ")}
                    {s.request?.schedule_id ? ` · schedule #${s.request.schedule_id}'s plan` : ""}
                  </Table.Td>
                  <Table.Td>
                    {s.request
                      ? `${s.request.schedule_id ? "the plan" : `${s.request.hours} h`} × ${s.request.replications}${s.request.from_live ? ", from live" : ""}`
                      : "–"}
                    {s.model_version != null ? ` · model v${s.model_version}` : ""}
                  </Table.Td>
                  <Table.Td>{s.status}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Card>
      {!engineer && sim == null && (recent?.length ?? 0) > 0 && (
        <Text size="sm" c="dimmed">
          Choose a simulation for its comparison.
        </Text>
      )}
      <Text size="xs" c="dimmed">
        Model version {doc.version}, updated {fmtDateTime(doc.updated_at)}.
      </Text>
    </Stack>
  );
}
