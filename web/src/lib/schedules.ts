import type { Schemas } from "../api/client";

// Schedules (job-shop plans): the service's resources, the live events, and the pure helpers behind the Gantt
// chart, the KPIs and a replan's difference that the tests pin down.

export type Schedule = Schemas["ScheduleOut"];
export type ScheduleDetail = Schemas["ScheduleDetailOut"];

/** `schedule_progress`: a solver's better plan while it runs. */
export interface ScheduleProgressEvent {
  schedule_id: number;
  elapsed_s: number;
  value: number;
  bound: number | null;
}

/** `plan_activated`: the line's plan is now this schedule. */
export interface PlanActivatedEvent {
  schedule_id: number;
  name: string;
  summary: Record<string, unknown>;
  previous_id: number | null;
}

export interface Operation {
  job: number;
  index: number;
  machine: number;
  start: number;
  end: number;
}

export interface JobInfo {
  name: string;
  due: number | null;
  weight: number;
}

interface InstanceDoc {
  machines?: number | string[];
  jobs?: { name?: string; due?: number; weight?: number }[];
}

/** The machines' names (numbers when the instance names none). */
export function machineNames(instance: unknown): string[] {
  const m = (instance as InstanceDoc | null)?.machines;
  if (Array.isArray(m)) return m.map(String);
  return Array.from({ length: typeof m === "number" ? m : 0 }, (_, i) => `M${i}`);
}

export function jobsOf(instance: unknown): JobInfo[] {
  const jobs = (instance as InstanceDoc | null)?.jobs ?? [];
  return jobs.map((j, i) => ({ name: j.name ?? `J${i}`, due: typeof j.due === "number" ? j.due : null, weight: j.weight ?? 1 }));
}

export function operationsOf(s: Pick<ScheduleDetail, "plan"> | null | undefined): Operation[] {
  const ops = (s?.plan as { operations?: Operation[] } | null | undefined)?.operations;
  return Array.isArray(ops) ? ops : [];
}

export function planNow(s: Pick<ScheduleDetail, "plan"> | null | undefined): number {
  const now = (s?.plan as { now?: number } | null | undefined)?.now;
  return typeof now === "number" ? now : 0;
}

/** A job's colour, the same for a job in every plan and chart: hues spread by the golden angle, dark enough for
 * white text (WCAG AA on the bars' labels). */
export function jobColor(job: number): string {
  const hue = Math.round((job * 137.508) % 360);
  return `hsl(${hue}, 65%, 34%)`;
}

export interface Kpis {
  makespan: number;
  weightedTardiness: number;
  late: Map<number, { end: number; due: number }>; // late jobs: their end and due date
  utilisation: number[]; // per machine: busy time / makespan
  bound: number | null;
  gap: number | null;
  value: number | null;
  objective: string;
}

/** The KPIs of a plan, computed from its operations (the service's summary gives the bound and gap). */
export function kpis(ops: Operation[], jobs: JobInfo[], machines: number, summary?: Record<string, unknown> | null): Kpis {
  let makespan = 0;
  const ends = new Map<number, number>();
  const busy = new Array<number>(machines).fill(0);
  for (const o of ops) {
    makespan = Math.max(makespan, o.end);
    ends.set(o.job, Math.max(ends.get(o.job) ?? 0, o.end));
    if (o.machine >= 0 && o.machine < machines) busy[o.machine] += o.end - o.start;
  }
  let weightedTardiness = 0;
  const late = new Map<number, { end: number; due: number }>();
  for (const [j, end] of ends) {
    const due = jobs[j]?.due;
    if (due != null && end > due) {
      late.set(j, { end, due });
      weightedTardiness += (jobs[j]?.weight ?? 1) * (end - due);
    }
  }
  const num = (v: unknown) => (typeof v === "number" ? v : null);
  return {
    makespan,
    weightedTardiness,
    late,
    utilisation: busy.map((b) => (makespan > 0 ? b / makespan : 0)),
    bound: num(summary?.bound),
    gap: num(summary?.gap),
    value: num(summary?.value),
    objective: typeof summary?.objective === "string" ? summary.objective : "makespan",
  };
}

export type Change = "moved" | "shifted";

/** Per operation ("job:index") how a replan changed it from its parent's plan: moved to another machine, or
 * shifted in time on the same machine. */
export function diffPlans(parent: Operation[], child: Operation[]): Map<string, { change: Change; from: Operation }> {
  const before = new Map(parent.map((o) => [`${o.job}:${o.index}`, o]));
  const out = new Map<string, { change: Change; from: Operation }>();
  for (const o of child) {
    const p = before.get(`${o.job}:${o.index}`);
    if (!p) continue;
    if (p.machine !== o.machine) out.set(`${o.job}:${o.index}`, { change: "moved", from: p });
    else if (p.start !== o.start) out.set(`${o.job}:${o.index}`, { change: "shifted", from: p });
  }
  return out;
}

/** The operations per machine, in start order: what the Gantt draws and its keyboard moves along. */
export function byMachine(ops: Operation[], machines: number): Operation[][] {
  const rows: Operation[][] = Array.from({ length: machines }, () => []);
  for (const o of ops) rows[o.machine]?.push(o);
  for (const r of rows) r.sort((a, b) => a.start - b.start || a.job - b.job);
  return rows;
}

/** Keyboard moves in the Gantt: left/right along a machine, up/down to the operation of the next machine nearest in
 * time, Home/End to a machine's first and last. Returns [row, column]. */
export function step(rows: Operation[][], at: [number, number] | null, key: string): [number, number] | null {
  const first = rows.findIndex((r) => r.length > 0);
  if (first < 0) return null;
  if (!at) return [first, 0];
  const [r, c] = at;
  const row = rows[r];
  if (key === "ArrowRight") return [r, Math.min(c + 1, row.length - 1)];
  if (key === "ArrowLeft") return [r, Math.max(c - 1, 0)];
  if (key === "Home") return [r, 0];
  if (key === "End") return [r, row.length - 1];
  if (key === "ArrowDown" || key === "ArrowUp") {
    const d = key === "ArrowDown" ? 1 : -1;
    const t = row[c]?.start ?? 0;
    for (let k = r + d; k >= 0 && k < rows.length; k += d) {
      const next = rows[k];
      if (!next.length) continue;
      let best = 0;
      for (let i = 1; i < next.length; i++) if (Math.abs(next[i].start - t) < Math.abs(next[best].start - t)) best = i;
      return [k, best];
    }
    return at;
  }
  return at;
}

/** The incumbents and bounds of a running solve, in time order (a late event for an earlier time is ignored). */
export function addProgress(list: ScheduleProgressEvent[], e: ScheduleProgressEvent): ScheduleProgressEvent[] {
  const last = list.at(-1);
  if (last && e.elapsed_s < last.elapsed_s) return list;
  return [...list, e];
}

export function fmtGap(gap: number | null | undefined): string {
  return gap == null ? "–" : `${(gap * 100).toFixed(gap < 0.01 ? 2 : 1)} %`;
}

/** A value of an objective: up to 6 significant digits, no padding ("55", "12.5"). */
export function fmtVal(v: number | null | undefined): string {
  return v == null ? "–" : String(Number(v.toPrecision(6)));
}

export interface Window {
  machine: number;
  start: number;
  end: number | null; // null: indefinitely
}

/** The machines' unavailable windows (a breakdown a replan planned around, maintenance). */
export function windowsOf(instance: unknown): Window[] {
  const w = (instance as { unavailable?: Window[] } | null)?.unavailable;
  return Array.isArray(w) ? w : [];
}
