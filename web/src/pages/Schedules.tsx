import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Center,
  FileInput,
  Grid,
  Group,
  Loader,
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
import { api, call, can } from "../api/client";
import { ConvergenceChart } from "../components/ConvergenceChart";
import { Gantt } from "../components/Gantt";
import { fmtDateTime, fmtPct } from "../lib/format";
import type { JobEvent } from "../lib/live";
import { navigate } from "../lib/router";
import { FINISHED, useFollow } from "../lib/useFollow";
import {
  type Schedule,
  type ScheduleDetail,
  type ScheduleProgressEvent,
  addProgress,
  diffPlans,
  fmtGap,
  fmtVal,
  jobsOf,
  kpis,
  machineNames,
  operationsOf,
  planNow,
  windowsOf,
} from "../lib/schedules";
import { useSession } from "../lib/session";
import { Feedback } from "../components/Feedback";

const OBJECTIVES = [
  { value: "makespan", label: "makespan" },
  { value: "tardiness", label: "total weighted tardiness" },
  { value: "weighted", label: "weighted (makespan + tardiness)" },
  { value: "lexicographic", label: "tardiness, then makespan" },
];

function JobLine({ job, what }: { job: JobEvent; what: string }) {
  const running = !FINISHED.includes(job.status);
  return (
    <Stack gap={4}>
      <Group justify="space-between">
        <Text size="sm" fw={600}>
          {what}: job #{job.id} {job.status}
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
        aria-label={`${what} progress`}
      />
    </Stack>
  );
}

function CreateForm({ onCreated }: { onCreated: (s: Schedule) => void }) {
  const [name, setName] = useState("");
  const [text, setText] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setError(null);
    const content = file ? await file.text() : text;
    const n = name.trim() || file?.name.replace(/\.[^.]*$/, "") || "";
    if (!n) return setError("Give the schedule a name.");
    if (!content.trim()) return setError("Paste an instance or choose a file (linewatch JSON, JSPLIB or Taillard text).");
    let instance: Record<string, unknown> | undefined;
    if (content.trim().startsWith("{")) {
      try {
        instance = JSON.parse(content);
      } catch {
        return setError("The instance looks like JSON but does not parse.");
      }
    }
    setBusy(true);
    try {
      const s = await call(api.POST("/api/v1/schedules", { body: instance ? { name: n, instance } : { name: n, text: content } }));
      setName("");
      setText("");
      setFile(null);
      onCreated(s);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card withBorder component="form" onSubmit={submit} aria-label="New schedule" data-testid="schedule-create">
      <Title order={3} size="h5" mb="xs">
        New schedule
      </Title>
      <Stack gap="xs">
        <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} data-testid="schedule-name" />
        <Textarea
          label="Instance"
          description="linewatch JSON, or JSPLIB / Taillard text"
          autosize
          minRows={3}
          maxRows={10}
          value={text}
          onChange={(e) => setText(e.currentTarget.value)}
          styles={{ input: { fontFamily: "monospace" } }}
          data-testid="schedule-text"
        />
        <FileInput label="or upload an instance file" placeholder="Choose a file" value={file} onChange={setFile} clearable clearButtonProps={{ "aria-label": "Clear the instance file" }} data-testid="schedule-file" />
        {error && (
          <Alert color="red" data-testid="schedule-create-error">
            {error}
          </Alert>
        )}
        <Group>
          <Button type="submit" loading={busy} data-testid="schedule-create-submit">
            Create
          </Button>
        </Group>
      </Stack>
    </Card>
  );
}

function Kpi({ label, value, testid }: { label: string; value: string; testid: string }) {
  return (
    <div>
      <Text size="xs" c="gray.7">
        {label}
      </Text>
      <Text fw={700} size="lg" data-testid={testid}>
        {value}
      </Text>
    </div>
  );
}

function Detail({ id, onChanged }: { id: number; onChanged: () => void }) {
  const { me, stream } = useSession();
  const engineer = can(me.role, "engineer");
  const [s, setS] = useState<ScheduleDetail | null>(null);
  const [parent, setParent] = useState<ScheduleDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [solver, setSolver] = useState("cpsat");
  const [limit, setLimit] = useState<number | string>(10);
  const [objective, setObjective] = useState("makespan");
  const [progress, setProgress] = useState<ScheduleProgressEvent[]>([]);
  const [downMachine, setDownMachine] = useState<string | null>(null);
  const [downAt, setDownAt] = useState<number | string>(0);
  const [downUntil, setDownUntil] = useState<number | string>("");
  const [replanLimit, setReplanLimit] = useState<number | string>(5);

  const load = useCallback(async () => {
    try {
      const d = await call(api.GET("/api/v1/schedules/{schedule_id}", { params: { path: { schedule_id: id } } }));
      setS(d);
      setError(null);
      if (d.parent_id != null) {
        call(api.GET("/api/v1/schedules/{schedule_id}", { params: { path: { schedule_id: d.parent_id } } })).then(setParent, () => setParent(null));
      } else setParent(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [id]);
  useEffect(() => {
    load();
  }, [load]);

  useEffect(() => {
    const onProgress = (e: ScheduleProgressEvent) => {
      if (e.schedule_id === id) setProgress((list) => addProgress(list, e));
    };
    const onPlan = () => {
      load();
      onChanged();
    };
    stream.scheduleProgress.add(onProgress);
    stream.plans.add(onPlan);
    return () => {
      stream.scheduleProgress.delete(onProgress);
      stream.plans.delete(onPlan);
    };
  }, [stream, id, load, onChanged]);

  const solving = useFollow((j) => {
    if (j.status === "failed") setMessage({ ok: false, text: `Solving failed: ${j.error ?? ""}` });
    load();
    onChanged();
  });
  const replanning = useFollow((j) => {
    const child = (j.result as { schedule_id?: number } | null)?.schedule_id;
    onChanged();
    if (j.status === "succeeded" && child != null) navigate(`/schedules/${child}`);
    else setMessage({ ok: false, text: `Replanning ${j.status}: ${j.error ?? ""}` });
  });

  const machines = useMemo(() => machineNames(s?.instance), [s]);
  const jobs = useMemo(() => jobsOf(s?.instance), [s]);
  const ops = useMemo(() => operationsOf(s), [s]);
  const k = useMemo(() => kpis(ops, jobs, machines.length, s?.summary), [ops, jobs, machines.length, s]);
  const parentOps = useMemo(() => operationsOf(parent), [parent]);
  const changes = useMemo(() => (parent ? diffPlans(parentOps, ops) : undefined), [parent, parentOps, ops]);
  const parentK = useMemo(() => (parent ? kpis(parentOps, jobs, machines.length, parent.summary) : null), [parent, parentOps, jobs, machines.length]);

  if (error) return <Alert color="yellow" title={`Schedule #${id}`}>{error}</Alert>;
  if (!s) {
    return (
      <Center p="xl">
        <Loader aria-label="Loading the schedule" />
      </Center>
    );
  }

  async function solve() {
    setMessage(null);
    setProgress([]);
    const params: Record<string, unknown> = { objective };
    if (solver === "cpsat") params.time_limit = Number(limit);
    try {
      solving.follow(await call(api.POST("/api/v1/schedules/{schedule_id}/solve", { params: { path: { schedule_id: id } }, body: { solver: solver as "cpsat" | "rules", params } })));
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    }
  }

  async function replan(e: React.FormEvent) {
    e.preventDefault();
    setMessage(null);
    if (downMachine === null) return setMessage({ ok: false, text: "Choose the machine that goes down." });
    const event: Record<string, unknown> = { type: "machine_down", machine: Number(downMachine), time: Number(downAt) };
    if (downUntil !== "") event.until = Number(downUntil);
    try {
      replanning.follow(
        await call(api.POST("/api/v1/schedules/{schedule_id}/replan", { params: { path: { schedule_id: id } }, body: { event, params: { time_limit: Number(replanLimit) } } })),
      );
    } catch (err) {
      setMessage({ ok: false, text: (err as Error).message });
    }
  }

  async function activate() {
    setMessage(null);
    try {
      await call(api.POST("/api/v1/schedules/{schedule_id}/activate", { params: { path: { schedule_id: id } } }));
      setMessage({ ok: true, text: `${s!.name} is now the line's plan.` });
      load();
      onChanged();
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    }
  }

  const ch = s.changes as { moved_operations?: number; shifted_operations?: number; total_shift?: number; max_shift?: number; interrupted?: unknown[] } | null;
  const ev = s.event as { type?: string; machine?: number; time?: number; until?: number } | null;
  const solved = ops.length > 0;
  const span = Math.max(k.makespan, parentK?.makespan ?? 0);
  return (
    <Stack data-testid="schedule-detail" data-id={s.id}>
      <Group justify="space-between" align="flex-start">
        <div>
          <Title order={3} data-testid="schedule-title">
            {s.name}{" "}
            <Text span c="gray.7" size="sm">
              #{s.id}
            </Text>
          </Title>
          <Group gap="xs">
            <Badge color={s.status === "solved" ? "#237a35" : s.status === "failed" ? "red.9" : "blue.9"} variant="filled" data-testid="schedule-status">
              {s.status}
            </Badge>
            {s.active && (
              <Badge color="grape.9" variant="filled" data-testid="schedule-active">
                active plan
              </Badge>
            )}
            <Text size="sm" c="gray.7">
              {jobs.length} jobs × {machines.length} machines · created {fmtDateTime(s.created_at)}
            </Text>
          </Group>
        </div>
        {engineer && (
          <Button onClick={activate} disabled={!solved || s.active} data-testid="schedule-activate">
            Activate
          </Button>
        )}
      </Group>
      <Feedback msg={message} onClose={() => setMessage(null)} data-testid="schedule-message" />

      {s.parent_id != null && (
        <Card withBorder data-testid="schedule-changes">
          <Text size="sm">
            Replanned from <Anchor href={`#/schedules/${s.parent_id}`}>#{s.parent_id}{parent ? ` ${parent.name}` : ""}</Anchor>
            {ev?.type === "machine_down"
              ? ` after ${machines[ev.machine ?? -1] ?? ev.machine} went down at ${ev.time}${ev.until != null ? ` until ${ev.until}` : ""}`
              : ev?.type
                ? ` after ${ev.type.replace("_", " ")}`
                : ""}
            .
          </Text>
          <Text size="sm" data-testid="schedule-changes-summary">
            {ch?.moved_operations ?? 0} operation(s) moved to another machine (thick black outline), {ch?.shifted_operations ?? 0} shifted in time (dashed orange outline; total
            shift {ch?.total_shift ?? 0}, largest {ch?.max_shift ?? 0}){ch?.interrupted?.length ? `, ${ch.interrupted.length} interrupted` : ""}
            {parentK ? `; makespan ${parentK.makespan} → ${k.makespan}, weighted tardiness ${fmtVal(parentK.weightedTardiness)} → ${fmtVal(k.weightedTardiness)}` : ""}.
          </Text>
        </Card>
      )}

      {engineer && (
        <Card withBorder data-testid="schedule-solve">
          <Group align="flex-end" gap="sm">
            <Select
              label="Solver"
              data={[
                { value: "cpsat", label: "CP-SAT (with a bound)" },
                { value: "rules", label: "dispatching rules" },
              ]}
              value={solver}
              onChange={(v) => setSolver(v ?? "cpsat")}
              allowDeselect={false}
              w={200}
            />
            {solver === "cpsat" && <NumberInput label="Time limit (s)" value={limit} onChange={setLimit} min={0.1} max={86400} w={130} data-testid="schedule-limit" />}
            <Select label="Objective" data={OBJECTIVES} value={objective} onChange={(v) => setObjective(v ?? "makespan")} allowDeselect={false} w={240} />
            <Button onClick={solve} loading={solving.running} disabled={s.parent_id != null} data-testid="schedule-solve-submit">
              Solve
            </Button>
          </Group>
          {s.parent_id != null && (
            <Text size="xs" c="gray.7" mt={4}>
              A replan is solved when it is made; replan it again for another event.
            </Text>
          )}
          {solving.job && (
            <Stack gap="xs" mt="sm" data-testid="schedule-solve-progress">
              <JobLine job={solving.job} what="Solving" />
              {progress.length > 0 && (
                <div data-testid="convergence" data-points={progress.length}>
                  <Text size="sm" data-testid="convergence-now">
                    incumbent {fmtVal(progress.at(-1)!.value)} · bound {fmtVal(progress.at(-1)!.bound)} after {progress.at(-1)!.elapsed_s.toFixed(1)} s
                  </Text>
                  <ConvergenceChart points={progress} objective={objective} />
                </div>
              )}
            </Stack>
          )}
        </Card>
      )}

      {solved ? (
        <>
          <Card withBorder data-testid="schedule-kpis">
            <SimpleGrid cols={{ base: 2, sm: 3, lg: 6 }}>
              <Kpi label="Makespan" value={String(k.makespan)} testid="kpi-makespan" />
              <Kpi label="Total weighted tardiness" value={fmtVal(k.weightedTardiness)} testid="kpi-tardiness" />
              <Kpi label="Late jobs" value={`${k.late.size} of ${jobs.length}`} testid="kpi-late" />
              <Kpi label={`Objective (${k.objective})`} value={fmtVal(k.value)} testid="kpi-value" />
              <Kpi label="Bound" value={fmtVal(k.bound)} testid="kpi-bound" />
              <Kpi label="Gap" value={fmtGap(k.gap)} testid="kpi-gap" />
            </SimpleGrid>
          </Card>
          <Card withBorder>
            <Group justify="space-between" mb="xs">
              <Title order={4} size="h5">
                Plan
              </Title>
              <Text size="xs" c="gray.7">
                machines × time; jobs coloured alike everywhere; dashed line: now ({planNow(s)}); red: a late job past its due date; hatched grey: machine down
              </Text>
            </Group>
            <Gantt
              ops={ops}
              machines={machines}
              jobs={jobs}
              now={planNow(s)}
              end={span}
              late={k.late}
              changes={changes}
              windows={windowsOf((s.plan as { instance_data?: unknown } | null)?.instance_data ?? s.instance)}
              label={`Plan of ${s.name}: ${ops.length} operations of ${jobs.length} jobs on ${machines.length} machines, makespan ${k.makespan}, ${k.late.size} late jobs${changes ? `, ${changes.size} operations changed from the parent plan` : ""}`}
            />
            {parent && (
              <details style={{ marginTop: 12 }} data-testid="parent-plan">
                <summary>
                  <Text span size="sm" fw={600}>
                    The plan before the replan (#{parent.id})
                  </Text>
                </summary>
                <Gantt
                  ops={parentOps}
                  machines={machines}
                  jobs={jobs}
                  now={planNow(parent)}
                  end={span}
                  late={parentK?.late}
                  label={`Plan of ${parent.name} before the replan, makespan ${parentK?.makespan}`}
                  testid="gantt-parent"
                />
              </details>
            )}
          </Card>
          <Grid>
            <Grid.Col span={{ base: 12, md: 6 }}>
              <Card withBorder h="100%">
                <Title order={4} size="h5" mb="xs">
                  Utilisation per machine
                </Title>
                <Table data-testid="utilisation">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Machine</Table.Th>
                      <Table.Th>Busy</Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {machines.map((m, i) => (
                      <Table.Tr key={m}>
                        <Table.Td>{m}</Table.Td>
                        <Table.Td>
                          <Group gap="xs" wrap="nowrap">
                            <Progress value={k.utilisation[i] * 100} w={120} aria-label={`${m} utilisation`} />
                            <Text size="sm">{fmtPct(k.utilisation[i], 0)}</Text>
                          </Group>
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </Card>
            </Grid.Col>
            <Grid.Col span={{ base: 12, md: 6 }}>
              {engineer && (
                <Card withBorder component="form" onSubmit={replan} aria-label="Replan after a machine goes down" data-testid="schedule-replan" h="100%">
                  <Title order={4} size="h5" mb="xs">
                    Replan: a machine goes down
                  </Title>
                  <Stack gap="xs">
                    <Select
                      label="Machine"
                      data={machines.map((m, i) => ({ value: String(i), label: m }))}
                      value={downMachine}
                      onChange={setDownMachine}
                      placeholder="Choose a machine"
                      data-testid="replan-machine"
                    />
                    <Group grow>
                      <NumberInput label="Down from (time)" value={downAt} onChange={setDownAt} min={0} />
                      <NumberInput label="Until (optional)" value={downUntil} onChange={setDownUntil} min={0} placeholder="indefinitely" />
                      <NumberInput label="Time limit (s)" value={replanLimit} onChange={setReplanLimit} min={0.1} />
                    </Group>
                    <Group>
                      <Button type="submit" loading={replanning.running} data-testid="replan-submit">
                        Replan
                      </Button>
                    </Group>
                    {replanning.job && <JobLine job={replanning.job} what="Replanning" />}
                  </Stack>
                </Card>
              )}
            </Grid.Col>
          </Grid>
          {k.late.size > 0 && (
            <Card withBorder>
              <Title order={4} size="h5" mb="xs">
                Late jobs
              </Title>
              <Text size="sm" data-testid="late-jobs">
                {[...k.late.entries()]
                  .sort((a, b) => b[1].end - b[1].due - (a[1].end - a[1].due))
                  .slice(0, 30)
                  .map(([j, l]) => `${jobs[j]?.name ?? j} (due ${l.due}, ends ${l.end}, +${l.end - l.due})`)
                  .join(", ")}
                {k.late.size > 30 ? ` and ${k.late.size - 30} more` : ""}
              </Text>
            </Card>
          )}
        </>
      ) : (
        <Text size="sm" c="gray.7" data-testid="schedule-unsolved">
          Not solved yet.{engineer ? " Solve it above." : " An engineer solves it."}
        </Text>
      )}
    </Stack>
  );
}

/** Schedules: job-shop instances, their plans as Gantt charts with KPIs, solving with the solver's progress live,
 * replanning after a machine goes down and what changed, the line's active plan. */
export default function SchedulesPage({ id }: { id: number | null }) {
  const { me } = useSession();
  const engineer = can(me.role, "engineer");
  const [list, setList] = useState<Schedule[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setList(await call(api.GET("/api/v1/schedules")));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  useEffect(() => {
    load();
  }, [load]);

  return (
    <Grid>
      <Grid.Col span={{ base: 12, lg: 3 }}>
        <Stack>
          <Title order={2}>Schedules</Title>
          {error && <Alert color="red">{error}</Alert>}
          {list && list.length === 0 && (
            <Text size="sm" c="gray.7" data-testid="no-schedules">
              No schedule yet.{engineer ? " Create one from an instance below." : ""}
            </Text>
          )}
          {list && list.length > 0 && (
            <nav aria-label="Schedules">
              <Table.ScrollContainer minWidth={280}>
              <Table highlightOnHover data-testid="schedule-list">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Schedule</Table.Th>
                    <Table.Th>Status</Table.Th>
                    <Table.Th>Makespan</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {list.map((s) => (
                    <Table.Tr key={s.id} data-testid="schedule-row" data-id={s.id} bg={s.id === id ? "var(--mantine-color-blue-0)" : undefined}>
                      <Table.Td>
                        <Anchor href={`#/schedules/${s.id}`} aria-current={s.id === id ? "page" : undefined} fw={600}>
                          {s.name}
                        </Anchor>{" "}
                        <Text span size="xs" c="gray.7">
                          #{s.id}
                          {s.parent_id != null ? ` ← #${s.parent_id}` : ""}
                        </Text>
                        {s.active && (
                          <Badge ml={4} size="xs" color="grape.9" variant="filled">
                            active
                          </Badge>
                        )}
                      </Table.Td>
                      <Table.Td>{s.status}</Table.Td>
                      <Table.Td>{typeof s.summary?.makespan === "number" ? s.summary.makespan : "–"}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
              </Table.ScrollContainer>
            </nav>
          )}
          {engineer && (
            <CreateForm
              onCreated={(s) => {
                load();
                navigate(`/schedules/${s.id}`);
              }}
            />
          )}
        </Stack>
      </Grid.Col>
      <Grid.Col span={{ base: 12, lg: 9 }}>
        {id != null ? (
          <Detail key={id} id={id} onChanged={load} />
        ) : (
          <Text size="sm" c="gray.7" mt="xl">
            Choose a schedule{engineer ? ", or create one" : ""}.
          </Text>
        )}
      </Grid.Col>
    </Grid>
  );
}
