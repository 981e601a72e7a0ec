import { request } from "../api/client";

// The digital twin of a line: its model (machines, buffers, routings), its live state and state events, OEE, and
// what-if simulations. The API's resources, the WebSocket event, and the pure helpers the pages draw from (the line
// map's layout, the timeline's segments, the loss waterfall, the scenarios' comparison) that the tests pin down.

export const STATES = ["running", "idle", "blocked", "starved", "down", "maintenance"] as const;
export type TwinState = (typeof STATES)[number];

// -- the line model (src/linewatch/twin/model.py) -------------------------------------------------------------------
export type Dist = number | { dist?: string; mean?: number; [k: string]: unknown };
export interface ModelFailure {
  cause?: string;
  mtbf_h?: number;
  mttr_min?: number;
  time_to_failure_h?: Dist;
  time_to_repair_min?: Dist;
}
export interface ModelMachine {
  name: string;
  type?: string;
  operation?: string;
  cycle_time_s?: Dist;
  ideal_cycle_time_s?: number;
  operations?: { name: string; cycle_time_s: Dist; ideal_cycle_time_s?: number }[];
  failures?: ModelFailure[] | ModelFailure;
}
export interface ModelBuffer {
  name: string;
  before: string;
  capacity: number | null;
}
export interface ModelInspection {
  machine: string;
  station: string;
  defect_rate: number;
  rework_fraction?: number;
  rework_to?: string;
}
export interface ModelProduct {
  name: string;
  mix?: number;
  routing: string[];
}
export interface ModelShift {
  name: string;
  start: string;
  end: string;
  days?: string[];
}
export interface LineModel {
  name: string;
  description?: string;
  timezone?: string;
  shifts?: ModelShift[];
  machines: ModelMachine[];
  buffers?: ModelBuffer[];
  inspections?: ModelInspection[];
  products?: ModelProduct[];
  arrivals?: unknown;
}

export interface LineModelDoc {
  line: string;
  version: number;
  model: LineModel;
  updated_at: string;
}

// -- live state and events ------------------------------------------------------------------------------------------
export interface MachineHealth {
  open_alerts?: number | null;
  rul?: number | null;
  rul_low?: number | null;
  rul_high?: number | null;
  failure_probability?: number | null;
}
export interface MachineState {
  machine: string;
  state: TwinState | string | null;
  since: string | null;
  reason?: string | null;
  job?: string | null;
  good?: number | null;
  defective?: number | null;
  health?: MachineHealth | null;
}
export interface BufferState {
  buffer: string;
  level: number | null;
  capacity: number | null;
}
export interface LineState {
  line: string;
  at: string;
  machines: MachineState[];
  buffers: BufferState[];
}
export interface TwinEventItem {
  id: number;
  ts: string;
  machine: string;
  kind?: string;
  state?: string | null;
  reason?: string | null;
  job?: string | null;
  source?: string | null;
  data?: Record<string, unknown> | null;
}
export interface EventsPage {
  items: TwinEventItem[];
  next_cursor: string | null;
}
/** `twin_event`: a new event of a line's twin history, stored: a machine's state (kind "state", counts in data),
 * its health (kind "health", data: open_alerts, rul, ...) or a buffer's level (kind "buffer": `machine` is the
 * buffer, data.level). */
export interface TwinEvent {
  type?: "twin_event";
  id?: number;
  line: string;
  machine: string;
  ts: string;
  kind?: string;
  state?: string | null;
  reason?: string | null;
  job?: string | null;
  data?: Record<string, unknown> | null;
  [k: string]: unknown;
}
/** `twin_model`: a line's model was stored (its version) or deleted (version null). */
export interface TwinModelEvent {
  type?: "twin_model";
  line: string;
  version: number | null;
}

// -- OEE (src/linewatch/twin/oee.py) --------------------------------------------------------------------------------
export interface Losses {
  planned_downtime_s?: number;
  downtime_s?: Record<string, number>;
  delay_s?: Record<string, number>;
  speed_loss_s?: number;
  scrap_loss_s?: number;
  rework_loss_s?: number;
  no_data_s?: number;
}
export interface OeeFigures {
  name?: string;
  machine?: string;
  availability: number | null;
  performance: number | null;
  quality: number | null;
  oee: number | null;
  output_oee?: number | null;
  planned_operation_s?: number;
  planned_busy_s?: number;
  production_s?: number;
  good?: number;
  scrap?: number;
  rework?: number;
  ideal_s?: number;
  losses?: Losses;
}
export interface ShiftOee extends OeeFigures {
  shift: string;
  start?: string;
  end?: string;
  from?: string;
  to?: string;
  line?: OeeFigures;
}
export interface OeeReport {
  line: OeeFigures;
  machines: OeeFigures[];
  shifts: ShiftOee[];
}

// -- simulations (src/linewatch/twin/experiments.py) ----------------------------------------------------------------
export interface StatJson {
  mean: number | null;
  sd?: number | null;
  ci_low: number | null;
  ci_high: number | null;
  n?: number;
}
export interface ScenarioSummary {
  scenario: string;
  hours: number;
  replications: number;
  seeds?: number[];
  bottleneck: Record<string, number>;
  stats: Record<string, StatJson>;
}
export interface Overrides {
  machines?: Record<string, unknown>[];
  buffers?: Record<string, unknown>[];
  inspections?: Record<string, unknown>[];
  products?: Record<string, unknown>[];
  shifts?: Record<string, unknown>[];
  mix?: Record<string, number>;
  [k: string]: unknown;
}
export interface SimulationRequest {
  hours: number;
  replications: number;
  seed: number;
  from_live: boolean;
  scenarios: { name: string; overrides: Overrides }[];
  schedule_id?: number | null;
  plan_release?: "planned" | "earliest";
  plan_durations?: "plan" | "variability" | "speed";
}
export interface Simulation {
  id: number;
  job_id?: number;
  line?: string;
  status: string; // the job's: queued, running, succeeded, failed, cancelled
  progress?: number;
  message?: string;
  error?: string | null;
  model_version?: number | null;
  request?: SimulationRequest;
  result?: unknown;
}

// -- the API --------------------------------------------------------------------------------------------------------
const base = (line: string) => `/api/v1/lines/${encodeURIComponent(line)}`;
const qs = (q: Record<string, string | number | null | undefined>) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== null && v !== undefined && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
};

export const twin = {
  getModel: (line: string) => request<LineModelDoc>("GET", `${base(line)}/model`),
  putModel: (line: string, model: unknown) => request<LineModelDoc>("PUT", `${base(line)}/model`, model), // the body is the model
  deleteModel: (line: string) => request<void>("DELETE", `${base(line)}/model`),
  state: (line: string, at?: string) => request<LineState>("GET", `${base(line)}/state${qs({ at })}`),
  events: (line: string, q: { from?: string; to?: string; machine?: string; limit?: number; cursor?: string | null }) =>
    request<EventsPage>("GET", `${base(line)}/events${qs(q)}`),
  oee: (line: string, from: string, to: string) => request<OeeReport>("GET", `${base(line)}/oee${qs({ from, to })}`),
  simulate: (line: string, body: SimulationRequest) => request<{ id: number; job_id: number }>("POST", `${base(line)}/simulations`, body),
  simulations: (line: string) => request<Simulation[]>("GET", `${base(line)}/simulations${qs({ limit: 20 })}`),
  simulation: (line: string, id: number) => request<Simulation>("GET", `${base(line)}/simulations/${id}`),
};

/** Every event in a range, page after page, up to `max` (the timeline says when it stopped short). */
export async function allEvents(
  line: string,
  q: { from: string; to: string; machine?: string },
  max = 20_000,
  fetchPage = twin.events,
): Promise<{ items: TwinEventItem[]; truncated: boolean }> {
  const items: TwinEventItem[] = [];
  let cursor: string | null = null;
  do {
    const page: EventsPage = await fetchPage(line, { ...q, limit: 1000, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return { items, truncated: cursor !== null };
}

// -- states: colour, never colour alone (a symbol and the word) ------------------------------------------------------
export interface StateStyle {
  label: string;
  color: string; // fill, white text on it passes WCAG AA
  symbol: string; // shown next to the word and in the legend
  pattern: string | null; // an SVG pattern id drawn over the fill in the map and the timeline
}
export const STATE_STYLE: Record<TwinState | "unknown", StateStyle> = {
  running: { label: "running", color: "#237a35", symbol: "▶", pattern: null },
  idle: { label: "idle", color: "#495057", symbol: "‖", pattern: null },
  blocked: { label: "blocked", color: "#8a5a00", symbol: "■", pattern: "lw-pat-dots" },
  starved: { label: "starved", color: "#1864ab", symbol: "○", pattern: "lw-pat-dots" },
  down: { label: "down", color: "#c92a2a", symbol: "✖", pattern: "lw-pat-hatch" },
  maintenance: { label: "maintenance", color: "#6741d9", symbol: "⚙", pattern: "lw-pat-hatch" },
  unknown: { label: "no data", color: "#5c636a", symbol: "?", pattern: null },
};
export function stateStyle(state: string | null | undefined): StateStyle {
  return STATE_STYLE[(state ?? "unknown") as TwinState] ?? STATE_STYLE.unknown;
}

// -- the line map's layout ------------------------------------------------------------------------------------------
export function machineOps(m: ModelMachine): string[] {
  if (m.operation) return [m.operation];
  return (m.operations ?? []).map((o) => o.name);
}

/** The products' routings (without products: one visiting every operation in the order the machines list them). */
export function routings(model: LineModel): string[][] {
  if (model.products?.length) return model.products.map((p) => p.routing);
  const seen: string[] = [];
  for (const m of model.machines) for (const o of machineOps(m)) if (!seen.includes(o)) seen.push(o);
  return [seen];
}

export interface FlowNode {
  id: string; // "m:<machine>" or "b:<buffer>"
  kind: "machine" | "buffer";
  name: string;
  ops: string[]; // a machine's operations; a buffer: the operation it feeds
  column: number;
  x: number;
  y: number;
  w: number;
  h: number;
}
export interface FlowEdge {
  from: string;
  to: string;
  rework?: boolean;
}
export interface FlowLayout {
  nodes: FlowNode[];
  edges: FlowEdge[];
  width: number;
  height: number;
  columns: string[][]; // the operations of each column
}

export const MAP = { machineW: 196, machineH: 112, bufferW: 112, bufferH: 64, gapX: 36, gapY: 20, pad: 16 };

/** Machines and buffers as a flow, left to right: each operation sits in the column of its longest path from the
 * start of any routing (parallel routings' operations share a column, like a filler's two products), its input buffer
 * before the machines offering it; parallel machines stack. Edges follow the routings; a rework is an edge back from
 * the inspection to where the part goes again. */
export function flowLayout(model: LineModel): FlowLayout {
  const routes = routings(model);
  const allOps: string[] = [];
  for (const m of model.machines) for (const o of machineOps(m)) if (!allOps.includes(o)) allOps.push(o);
  for (const r of routes) for (const o of r) if (!allOps.includes(o)) allOps.push(o);
  // rank: the longest path from a routing's start (routings are acyclic in themselves; a cycle across products is
  // cut by a bound)
  const rank = new Map<string, number>(allOps.map((o) => [o, 0]));
  for (let pass = 0; pass < allOps.length; pass++) {
    let changed = false;
    for (const r of routes) {
      for (let i = 1; i < r.length; i++) {
        const want = (rank.get(r[i - 1]) ?? 0) + 1;
        if ((rank.get(r[i]) ?? 0) < want && want <= allOps.length) {
          rank.set(r[i], want);
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  // operations on no routing go after the rest, in machine order
  const onRoute = new Set(routes.flat());
  let last = Math.max(0, ...[...onRoute].map((o) => rank.get(o) ?? 0));
  for (const o of allOps) if (!onRoute.has(o)) rank.set(o, ++last);
  const nCols = Math.max(0, ...rank.values()) + 1;
  const columns: string[][] = Array.from({ length: nCols }, () => []);
  for (const o of allOps) columns[rank.get(o)!].push(o);

  const bufferOf = new Map((model.buffers ?? []).map((b) => [b.before, b]));
  const machinesOf = (op: string) => model.machines.filter((m) => machineOps(m).includes(op));
  const { machineW, machineH, bufferW, bufferH, gapX, gapY, pad } = MAP;
  const nodes: FlowNode[] = [];
  const placed = new Map<string, FlowNode>();
  let x = pad;
  const colHeights: number[] = [];
  const colNodes: FlowNode[][] = [];
  columns.forEach((ops, c) => {
    const bufs = ops.map((o) => bufferOf.get(o)).filter((b): b is ModelBuffer => !!b);
    const machines: ModelMachine[] = [];
    for (const o of ops) for (const m of machinesOf(o)) if (!machines.includes(m) && !placed.has(`m:${m.name}`)) machines.push(m);
    const here: FlowNode[] = [];
    if (bufs.length) {
      bufs.forEach((b, i) => {
        const n: FlowNode = { id: `b:${b.name}`, kind: "buffer", name: b.name, ops: [b.before], column: c, x, y: i * (bufferH + gapY), w: bufferW, h: bufferH };
        here.push(n);
      });
      x += bufferW + gapX;
    }
    machines.forEach((m, i) => {
      const n: FlowNode = { id: `m:${m.name}`, kind: "machine", name: m.name, ops: machineOps(m), column: c, x, y: i * (machineH + gapY), w: machineW, h: machineH };
      here.push(n);
      placed.set(n.id, n);
    });
    if (machines.length) x += machineW + gapX;
    const hb = bufs.length ? bufs.length * (bufferH + gapY) - gapY : 0;
    const hm = machines.length ? machines.length * (machineH + gapY) - gapY : 0;
    colHeights.push(Math.max(hb, hm));
    colNodes.push(here);
    nodes.push(...here);
  });
  const height = Math.max(machineH, ...colHeights) + 2 * pad + 28; // room for the rework arcs above
  const top = pad + 28;
  // centre each column's buffers and machines vertically
  colNodes.forEach((here) => {
    for (const kind of ["buffer", "machine"] as const) {
      const group = here.filter((n) => n.kind === kind);
      if (!group.length) continue;
      const h = group[group.length - 1].y + group[group.length - 1].h;
      const off = top + (height - top - pad - h) / 2;
      for (const n of group) n.y += off;
    }
  });

  // edges: along each routing, a machine of one operation to the next one's buffer (or its machines), the buffer to
  // its machines
  const edges: FlowEdge[] = [];
  const seen = new Set<string>();
  const add = (from: string, to: string, rework = false) => {
    const k = `${from}>${to}`;
    if (from === to || seen.has(k)) return;
    seen.add(k);
    edges.push({ from, to, rework });
  };
  const entry = (op: string) => {
    const b = bufferOf.get(op);
    return b ? [`b:${b.name}`] : machinesOf(op).map((m) => `m:${m.name}`);
  };
  for (const op of allOps) {
    const b = bufferOf.get(op);
    if (b) for (const m of machinesOf(op)) add(`b:${b.name}`, `m:${m.name}`);
  }
  for (const r of routes) {
    for (let i = 1; i < r.length; i++) {
      for (const m of machinesOf(r[i - 1])) for (const to of entry(r[i])) add(`m:${m.name}`, to);
    }
  }
  for (const ins of model.inspections ?? []) {
    if (ins.rework_to && (ins.rework_fraction ?? 0) > 0) for (const to of entry(ins.rework_to)) add(`m:${ins.machine}`, to, true);
  }
  return { nodes, edges, width: Math.max(x - gapX + pad, 200), height, columns };
}

// -- live state ------------------------------------------------------------------------------------------------------
/** The state with one live event applied: a machine's state, why, since when, its job, and counts added; a
 * machine's health; a buffer's level. */
export function applyEvent(state: LineState, ev: TwinEvent): LineState {
  if (ev.line && state.line && ev.line !== state.line) return state;
  const data = (ev.data ?? {}) as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === "number" ? v : 0);
  const at = ev.ts > state.at ? ev.ts : state.at;
  if (ev.kind === "buffer") {
    if (!state.buffers.some((b) => b.buffer === ev.machine)) return state;
    const level = typeof data.level === "number" ? data.level : null;
    return { ...state, at, buffers: state.buffers.map((b) => (b.buffer === ev.machine ? { ...b, level } : b)) };
  }
  let hit = false;
  const machines = state.machines.map((m) => {
    if (m.machine !== ev.machine) return m;
    hit = true;
    if (ev.kind === "health") return { ...m, health: { ...(m.health ?? {}), ...(data as MachineHealth) } };
    const changes = ev.state && ev.state !== m.state;
    return {
      ...m,
      state: ev.state ?? m.state,
      since: changes ? ev.ts : m.since,
      reason: ev.state ? (ev.reason ?? null) : m.reason,
      job: ev.job !== undefined && ev.job !== null ? ev.job : m.job,
      good: (m.good ?? 0) + n(data.good ?? ev.good),
      defective: (m.defective ?? 0) + n(data.defective ?? ev.defective),
    };
  });
  if (!hit) return state;
  return { ...state, machines, at };
}

/** "12 s", "4 min", "2 h 5 min", "3 d 4 h": a duration for people. */
export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

// -- the state timeline -----------------------------------------------------------------------------------------------
export interface Segment {
  machine: string;
  state: string; // a state, or "unknown" before the first one known
  start: number; // ms since the epoch
  end: number;
  reason: string | null;
  job: string | null;
}

/** Each machine's states over [from, to) as segments: from its state at `from` (the state endpoint, or unknown),
 * through each event that changes the state (an event repeating the state, reporting counts, continues the segment;
 * a new reason or job starts a new one). Events outside the range are ignored. */
export function segments(
  machines: string[],
  events: (Pick<TwinEventItem, "ts" | "machine" | "state" | "reason" | "job"> & { kind?: string })[],
  from: number,
  to: number,
  initial: Map<string, { state: string | null; reason?: string | null; job?: string | null }> = new Map(),
): Map<string, Segment[]> {
  const out = new Map<string, Segment[]>(machines.map((m) => [m, []]));
  const open = new Map<string, Segment>();
  for (const m of machines) {
    const i = initial.get(m);
    open.set(m, { machine: m, state: i?.state ?? "unknown", start: from, end: to, reason: i?.reason ?? null, job: i?.job ?? null });
  }
  const sorted = [...events].filter((e) => e.state && (e.kind ?? "state") === "state").sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
  for (const e of sorted) {
    const t = Date.parse(e.ts);
    if (!(t >= from && t < to)) continue;
    if (!out.has(e.machine)) {
      out.set(e.machine, []);
      open.set(e.machine, { machine: e.machine, state: "unknown", start: from, end: to, reason: null, job: null });
    }
    const cur = open.get(e.machine)!;
    const reason = e.reason ?? null;
    const job = e.job ?? cur.job;
    if (cur.state === e.state && cur.reason === reason && cur.job === job) continue;
    if (t > cur.start) out.get(e.machine)!.push({ ...cur, end: t });
    open.set(e.machine, { machine: e.machine, state: e.state!, start: t, end: to, reason, job });
  }
  for (const [m, cur] of open) if (to > cur.start) out.get(m)!.push({ ...cur, end: to });
  return out;
}

/** Time per state of a machine's segments (ms), in the states' order. */
export function timeInStates(segs: Segment[]): { state: string; ms: number; share: number }[] {
  const total = segs.reduce((s, x) => s + (x.end - x.start), 0);
  const by = new Map<string, number>();
  for (const s of segs) by.set(s.state, (by.get(s.state) ?? 0) + s.end - s.start);
  return [...STATES, "unknown"]
    .filter((s) => by.has(s))
    .map((s) => ({ state: s, ms: by.get(s)!, share: total > 0 ? by.get(s)! / total : 0 }));
}

export function describeSegment(s: Segment): string {
  const st = stateStyle(s.state);
  const parts = [`${s.machine}: ${st.label}`, `${fmtClock(s.start)} to ${fmtClock(s.end)} (${fmtDuration((s.end - s.start) / 1000)})`];
  if (s.reason) parts.push(s.reason);
  if (s.job) parts.push(`job ${s.job}`);
  return parts.join(" · ");
}

const pad2 = (n: number) => String(n).padStart(2, "0");
export function fmtClock(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

// -- OEE ----------------------------------------------------------------------------------------------------------------
/** A shift's figures whether the service nests them ({shift, line: {...}}) or not ({shift, availability, ...}). */
export function shiftFigures(s: ShiftOee): OeeFigures {
  return s.line && typeof s.line === "object" ? s.line : s;
}

export interface LossBar {
  label: string;
  kind: "total" | "downtime" | "delay" | "speed" | "scrap" | "rework" | "result";
  seconds: number;
  start: number; // where the bar starts on the waterfall (seconds from 0)
}

/** The loss waterfall: from the planned busy time, each loss taken off in turn (downtime by cause, the delays, the
 * speed loss, scrap, rework), down to the fully productive time (the good parts' ideal time). */
export function lossWaterfall(f: OeeFigures): LossBar[] {
  const l = f.losses ?? {};
  const pbt = f.planned_busy_s ?? 0;
  const bars: LossBar[] = [{ label: "Planned busy time", kind: "total", seconds: pbt, start: 0 }];
  let level = pbt;
  const take = (label: string, kind: LossBar["kind"], s: number | undefined) => {
    if (!s || s <= 0) return;
    level -= s;
    bars.push({ label, kind, seconds: s, start: Math.max(level, 0) });
  };
  for (const [cause, s] of Object.entries(l.downtime_s ?? {}).sort((a, b) => b[1] - a[1])) take(`Downtime: ${cause}`, "downtime", s);
  for (const [k, s] of Object.entries(l.delay_s ?? {}).sort((a, b) => b[1] - a[1])) take(`Delay: ${k}`, "delay", s);
  take("Speed loss", "speed", l.speed_loss_s);
  take("Scrap", "scrap", l.scrap_loss_s);
  take("Rework", "rework", l.rework_loss_s);
  bars.push({ label: "Fully productive time", kind: "result", seconds: Math.max(level, 0), start: 0 });
  return bars;
}

/** The last shift that started at or before `now` (the one running now, up to now), from the model's shift calendar
 * in its time zone; without shifts, the last 8 hours. */
export function lastShift(shifts: ModelShift[] | undefined, timeZone: string | undefined, now: number): { name: string; from: number; to: number } {
  if (!shifts?.length) return { name: "last 8 h", from: now - 8 * 3600_000, to: now };
  const DAY = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
  let best: { name: string; from: number; to: number } | null = null;
  for (let back = 0; back <= 8; back++) {
    const local = wallParts(now - back * 86400_000, timeZone);
    for (const s of shifts) {
      const days = s.days ?? ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
      if (!days.includes(DAY[local.weekday])) continue;
      const [sh, sm] = s.start.split(":").map(Number);
      const [eh, em] = s.end.split(":").map(Number);
      const start = zonedTime(local.year, local.month, local.day, sh, sm, timeZone);
      let end = zonedTime(local.year, local.month, local.day, eh, em, timeZone);
      if (end <= start) end += 86400_000;
      if (start <= now && (!best || start > best.from)) best = { name: s.name, from: start, to: Math.min(end, now) };
    }
    if (best) break;
  }
  return best ?? { name: "last 8 h", from: now - 8 * 3600_000, to: now };
}

function wallParts(ms: number, timeZone?: string) {
  const f = new Intl.DateTimeFormat("en-US", { timeZone: timeZone || "UTC", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric", hourCycle: "h23", weekday: "short" });
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  const wd = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(p.weekday);
  return { year: +p.year, month: +p.month, day: +p.day, hour: +p.hour, minute: +p.minute, second: +p.second, weekday: wd };
}

/** The instant of a wall-clock time in a time zone. */
export function zonedTime(year: number, month: number, day: number, hour: number, minute: number, timeZone?: string): number {
  const guess = Date.UTC(year, month - 1, day, hour, minute);
  let t = guess;
  for (let i = 0; i < 2; i++) {
    const p = wallParts(t, timeZone);
    const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
    t += guess - shown;
  }
  return t;
}

// -- what-if -------------------------------------------------------------------------------------------------------------
export interface ScenarioForm {
  extraMachines: Record<string, number>; // machine -> copies to add
  bufferCapacity: Record<string, number | "">; // buffer -> new capacity
  failureFactor: Record<string, number | "">; // machine -> failure rate × (MTBF ÷)
  defectRate: Record<string, number | "">; // inspecting machine -> defect rate (0..1)
  mix: Record<string, number | "">; // product -> share
}
export const emptyForm = (): ScenarioForm => ({ extraMachines: {}, bufferCapacity: {}, failureFactor: {}, defectRate: {}, mix: {} });

function failuresOf(m: ModelMachine): ModelFailure[] {
  if (!m.failures) return [];
  return Array.isArray(m.failures) ? m.failures : [m.failures];
}

/** The scenario overrides (model.py's apply_scenario) the form stands for: copies of a machine (`like`), buffer
 * capacities, failure rates (each failure mode's MTBF divided by the factor; a distribution's time to failure scaled),
 * defect rates, the product mix. */
export function formOverrides(model: LineModel, form: ScenarioForm): Overrides {
  const o: Overrides = {};
  const machines: Record<string, unknown>[] = [];
  for (const m of model.machines) {
    const f = form.failureFactor[m.name];
    if (f !== undefined && f !== "" && f !== 1 && f > 0 && failuresOf(m).length) {
      machines.push({
        name: m.name,
        failures: failuresOf(m).map((x) => {
          if (x.mtbf_h != null) return { ...x, mtbf_h: round(x.mtbf_h / f) };
          const ttf = x.time_to_failure_h;
          if (typeof ttf === "number") return { ...x, time_to_failure_h: round(ttf / f) };
          if (ttf && typeof ttf === "object") {
            const scaled: Record<string, unknown> = { ...ttf };
            for (const k of ["mean", "scale", "low", "high", "mode", "value"]) if (typeof scaled[k] === "number") scaled[k] = round((scaled[k] as number) / f);
            return { ...x, time_to_failure_h: scaled };
          }
          return x;
        }),
      });
    }
  }
  const names = new Set(model.machines.map((m) => m.name));
  for (const [m, n] of Object.entries(form.extraMachines)) {
    for (let i = 0, k = 2; i < n; k++) {
      const name = `${m} ${k}`;
      if (names.has(name)) continue;
      names.add(name);
      machines.push({ name, like: m });
      i++;
    }
  }
  if (machines.length) o.machines = machines;
  const buffers = Object.entries(form.bufferCapacity)
    .filter(([b, c]) => c !== "" && c !== undefined && model.buffers?.find((x) => x.name === b)?.capacity !== c)
    .map(([name, capacity]) => ({ name, capacity }));
  if (buffers.length) o.buffers = buffers;
  const inspections = Object.entries(form.defectRate)
    .filter(([m, r]) => r !== "" && r !== undefined && model.inspections?.find((x) => x.machine === m)?.defect_rate !== r)
    .map(([machine, defect_rate]) => ({ machine, defect_rate }));
  if (inspections.length) o.inspections = inspections;
  const mix = Object.entries(form.mix).filter(([p, s]) => s !== "" && s !== undefined && model.products?.find((x) => x.name === p)?.mix !== s);
  if (mix.length) o.mix = Object.fromEntries(mix) as Record<string, number>;
  return o;
}

const round = (x: number) => Number(x.toPrecision(6));

const KEYS: Record<string, string> = { machines: "name", buffers: "name", products: "name", shifts: "name", inspections: "machine" };

/** The form's overrides with the raw JSON ones on top: list entries merged by their key (name, machine), the mix
 * merged, any other field replaced. */
export function mergeOverrides(a: Overrides, b: Overrides): Overrides {
  const out: Overrides = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const key = KEYS[k];
    const cur = out[k];
    if (key && Array.isArray(v) && Array.isArray(cur)) {
      const list = cur.map((x) => ({ ...(x as Record<string, unknown>) }));
      for (const e of v as Record<string, unknown>[]) {
        const at = list.findIndex((x) => x[key] === e?.[key]);
        if (at >= 0) list[at] = { ...list[at], ...e };
        else list.push(e);
      }
      out[k] = list;
    } else if (k === "mix" && cur && typeof cur === "object" && v && typeof v === "object") {
      out.mix = { ...(cur as Record<string, number>), ...(v as Record<string, number>) };
    } else out[k] = v;
  }
  return out;
}

/** The raw overrides box: {} when empty, an error naming what is wrong otherwise. */
export function parseOverrides(text: string): { value: Overrides } | { error: string } {
  if (!text.trim()) return { value: {} };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `Not valid JSON: ${(e as Error).message}` };
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return { error: "The overrides must be a JSON object, e.g. {\"buffers\": [{\"name\": \"b1\", \"capacity\": 50}]}" };
  return { value: v as Overrides };
}

/** The summaries of a simulation's result, whatever wraps them ({scenarios: [...]}, {summaries: [...]}, a list). */
export function summariesOf(result: unknown): ScenarioSummary[] {
  if (!result) return [];
  const r = result as { scenarios?: unknown; summaries?: unknown; compare?: unknown };
  const list = Array.isArray(result) ? result : Array.isArray(r.scenarios) ? r.scenarios : Array.isArray(r.summaries) ? r.summaries : Array.isArray(r.compare) ? r.compare : [];
  return (list as ScenarioSummary[]).filter((s) => s && typeof s === "object" && s.stats && typeof s.stats === "object");
}

export interface CompareBar {
  scenario: string;
  mean: number | null;
  low: number | null;
  high: number | null;
}
export interface CompareGroup {
  label: string; // a figure, or a machine
  bars: CompareBar[];
  bottleneck?: string[]; // scenarios in which this machine is the bottleneck (most often)
}
export interface CompareMetric {
  key: string;
  title: string;
  unit: string;
  scale: number; // shown = value × scale
  groups: CompareGroup[];
}

const num = (v: number | null | undefined) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** The machine a scenario's replications found the bottleneck most often. */
export function bottleneckOf(s: ScenarioSummary): string | null {
  let best: string | null = null;
  for (const [m, share] of Object.entries(s.bottleneck ?? {})) if (best === null || share > s.bottleneck[best]) best = m;
  return best;
}

/** The comparison's charts: the line's figures side by side per scenario, each with its confidence interval, then
 * utilisation and blocking per machine, the bottleneck marked. */
export function comparison(summaries: ScenarioSummary[], unit = "min"): CompareMetric[] {
  const bar = (s: ScenarioSummary, key: string, scale = 1): CompareBar => {
    const st = s.stats[key];
    const m = num(st?.mean);
    const lo = num(st?.ci_low);
    const hi = num(st?.ci_high);
    return { scenario: s.scenario, mean: m == null ? null : m * scale, low: lo == null ? null : lo * scale, high: hi == null ? null : hi * scale };
  };
  const scalar = (key: string, title: string, unit: string, scale = 1): CompareMetric => ({
    key,
    title,
    unit,
    scale,
    groups: [{ label: title, bars: summaries.map((s) => bar(s, key, scale)) }],
  });
  const machines: string[] = [];
  for (const s of summaries)
    for (const k of Object.keys(s.stats)) {
      const m = /^machines\.(.+)\.utilisation$/.exec(k);
      if (m && !machines.includes(m[1])) machines.push(m[1]);
    }
  const bottlenecks = new Map(summaries.map((s) => [s.scenario, bottleneckOf(s)]));
  const perMachine = (field: string, title: string): CompareMetric => ({
    key: field,
    title,
    unit: "%",
    scale: 100,
    groups: machines.map((m) => ({
      label: m,
      bars: summaries.map((s) => bar(s, `machines.${m}.${field}`, 100)),
      bottleneck: summaries.filter((s) => bottlenecks.get(s.scenario) === m).map((s) => s.scenario),
    })),
  });
  if (summaries.some((s) => s.stats.makespan)) {
    // a schedule's plan run on the line: its figures, in the plan's time unit
    const plan = [
      scalar("makespan", "Makespan", unit),
      scalar("weighted_tardiness", "Weighted tardiness", unit),
      scalar("late_jobs", "Late jobs", "jobs"),
    ];
    if (machines.length) plan.push(perMachine("utilisation", "Utilisation per machine"), perMachine("down", "Down per machine"));
    return plan;
  }
  const out = [
    scalar("throughput_per_h", "Throughput", "parts/h"),
    scalar("lead_time_s", "Lead time", "min", 1 / 60),
    scalar("wip", "Work in progress", "parts"),
  ];
  if (summaries.some((s) => s.stats.output_oee)) out.push(scalar("output_oee", "Output OEE", "%", 100));
  if (machines.length) out.push(perMachine("utilisation", "Utilisation per machine"), perMachine("blocked", "Blocked per machine"));
  return out;
}

// -- a schedule's plan run on the line (src/linewatch/twin/plansim.py; the result's plan section) --------------------
export interface PlanJob {
  job: string;
  due: number | null;
  weight?: number;
  planned_end: number;
  end: StatJson;
  lateness: StatJson;
  late_share: number;
  scrapped_share?: number;
}
export interface PlanSection {
  schedule_id: number;
  schedule: string;
  objective?: string;
  solver?: string;
  time_unit_s: number;
  release?: string;
  durations?: string;
  planned: { makespan: number; weighted_tardiness: number; tardiness?: number; late_jobs: number; late?: string[] };
  simulated: Record<string, StatJson>;
  late_share: number;
  jobs: PlanJob[];
}

/** The plan section of a simulation result, or null (a product-mix simulation has none). */
export function planOf(result: unknown): PlanSection | null {
  const p = (result as { plan?: unknown } | null)?.plan as PlanSection | undefined;
  if (!p || typeof p !== "object" || !p.planned || !p.simulated || !Array.isArray(p.jobs)) return null;
  return p;
}

/** The plan's time unit in words: "min" for 60 s, "s", "h", else "× 90 s". */
export function unitLabel(seconds: number | null | undefined): string {
  if (seconds === 60) return "min";
  if (seconds === 1) return "s";
  if (seconds === 3600) return "h";
  return seconds ? `× ${seconds} s` : "units";
}

export interface PlanRow {
  key: string;
  title: string;
  unit: string;
  planned: number;
  simulated: CompareBar;
  /** the simulated mean over the planned figure minus one (null when the plan's is 0) */
  change: number | null;
}

/** Plan vs simulation, figure by figure: makespan, weighted tardiness, tardiness, late jobs. */
export function planRows(p: PlanSection): PlanRow[] {
  const unit = unitLabel(p.time_unit_s);
  const rows: [string, string, string][] = [
    ["makespan", "Makespan", unit],
    ["weighted_tardiness", "Weighted tardiness", unit],
    ["tardiness", "Tardiness", unit],
    ["late_jobs", "Late jobs", "jobs"],
  ];
  return rows
    .filter(([k]) => typeof (p.planned as Record<string, unknown>)[k] === "number")
    .map(([key, title, u]) => {
      const planned = (p.planned as unknown as Record<string, number>)[key];
      const st = p.simulated[key];
      const simulated: CompareBar = { scenario: "simulated", mean: num(st?.mean), low: num(st?.ci_low), high: num(st?.ci_high) };
      const change = simulated.mean != null && planned !== 0 ? simulated.mean / planned - 1 : null;
      return { key, title, unit: u, planned, simulated, change };
    });
}

/** The jobs at risk: late in any replication or ending later than planned on average, the most often late first. */
export function jobsAtRisk(p: PlanSection): PlanJob[] {
  return p.jobs
    .filter((j) => j.late_share > 0 || (num(j.lateness?.mean) ?? 0) > 0)
    .sort((a, b) => b.late_share - a.late_share || (num(b.lateness?.mean) ?? 0) - (num(a.lateness?.mean) ?? 0));
}

/** The schedules whose plan can be run: solved ones, newest first, labelled with their id (and active). */
export function plannable(list: { id: number; name: string; status: string; active?: boolean }[]): { value: string; label: string }[] {
  return list
    .filter((s) => s.status === "solved")
    .sort((a, b) => b.id - a.id)
    .map((s) => ({ value: String(s.id), label: `#${s.id} ${s.name}${s.active ? " (active)" : ""}` }));
}

/** "12.3 [11.9, 12.8]" — a mean with its confidence interval (when there is one). */
export function fmtCi(b: CompareBar, digits = 3): string {
  if (b.mean == null) return "–";
  const f = (x: number) => String(Number(x.toPrecision(digits)));
  return b.low != null && b.high != null ? `${f(b.mean)} [${f(b.low)}, ${f(b.high)}]` : f(b.mean);
}

// -- the model editor ---------------------------------------------------------------------------------------------------
/** JSON.stringify(value, null, 2) and the line (1-based) each value's path starts on ("machines[2].cycle_time_s"),
 * so the service's 422 errors can point at their line. */
export function prettyWithLines(value: unknown): { text: string; lines: Map<string, number> } {
  const lines = new Map<string, number>();
  let line = 1;
  const out: string[] = [];
  const write = (s: string) => {
    out.push(s);
    for (const c of s) if (c === "\n") line++;
  };
  const walk = (v: unknown, path: string, indent: string) => {
    lines.set(path || "line", line);
    if (Array.isArray(v)) {
      if (!v.length) return write("[]");
      write("[\n");
      v.forEach((x, i) => {
        write(indent + "  ");
        walk(x, `${path}[${i}]`, indent + "  ");
        write(i < v.length - 1 ? ",\n" : "\n");
      });
      write(indent + "]");
    } else if (v && typeof v === "object") {
      const entries = Object.entries(v).filter(([, x]) => x !== undefined);
      if (!entries.length) return write("{}");
      write("{\n");
      entries.forEach(([k, x], i) => {
        write(`${indent}  ${JSON.stringify(k)}: `);
        walk(x, path ? `${path}.${k}` : k, indent + "  ");
        write(i < entries.length - 1 ? ",\n" : "\n");
      });
      write(indent + "}");
    } else write(JSON.stringify(v ?? null));
  };
  walk(value, "", "");
  return { text: out.join(""), lines };
}

export interface FieldError {
  path: string;
  message: string;
  line?: number;
}

/** A 422's field errors ({detail: [{path, message}]}, or a message "the line model: machines[2].x: must be > 0"),
 * with the line of the editor's text each points at (the nearest enclosing path known). */
export function fieldErrors(body: unknown, lines?: Map<string, number>): FieldError[] {
  const detail = (body as { detail?: unknown } | null)?.detail;
  let list: { path: string; message: string }[] = [];
  if (Array.isArray(detail)) {
    list = detail.map((d: { path?: string; message?: string; loc?: (string | number)[]; msg?: string }) => ({
      path: d.path ?? (d.loc ?? []).filter((x) => x !== "body").join("."),
      message: d.message ?? d.msg ?? "",
    }));
  } else if (typeof detail === "string") {
    const m = /^(?:[^:]*: )?([A-Za-z_][\w.[\]]*): (.*)$/.exec(detail);
    list = [m ? { path: m[1], message: m[2] } : { path: "", message: detail }];
  }
  return list.map((e) => {
    let p = e.path.replace(/^(body\.)?(model\.)?/, "");
    let line: number | undefined;
    while (lines && p) {
      line = lines.get(p);
      if (line !== undefined) break;
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      p = cut > 0 ? p.slice(0, cut) : "";
    }
    return { ...e, line };
  });
}
