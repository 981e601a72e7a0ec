import type { Schemas } from "../api/client";

// Machines, their alerts and live state: the types the pages share, the WebSocket events they follow, and the
// pure helpers (health colour, alert order, live points into a downsampled series) that the tests pin down.

export type Machine = Schemas["MachineOut"];
export type MachineAlert = Schemas["AlertOut"];
export type AlertDetail = Schemas["AlertDetailOut"];
export type AlertComment = Schemas["CommentOut"];
export type MachineModel = Schemas["MachineModelOut"];
export type Readings = Schemas["ReadingsOut"];
export type Series = Schemas["SeriesOut"];
export type Line = Schemas["LineOut"];

/** `machine_state`: a machine's newest readings and health, at most about once a second per machine. */
export interface MachineStateEvent {
  machine: string;
  line: string;
  time: number; // seconds since the epoch
  health: number | null;
  score: number | null;
  values: Record<string, number>;
  readings: number;
  open_alert_id: number | null;
}

export type AlertChange = "opened" | "extended" | "closed" | "acknowledged" | "commented";

/** `alert`: an alert opened, extended, closed, acknowledged or commented on. */
export interface AlertEvent {
  alert: MachineAlert;
  change: AlertChange;
}

/** `machines_changed` and `machine_model_activated`: definitions or the active model changed; pages reload. */
export interface MachinesChangedEvent {
  type: "machines_changed" | "machine_model_activated";
  machines?: string[];
  machine?: string;
  change?: string;
  model_id?: number;
}

export const SCORE = "_score";

// -- health ---------------------------------------------------------------------------------------------------------
export type HealthLevel = "normal" | "watch" | "alerting" | "unknown";

/** Health 0 (alerting) to 1 (normal) in three bands; null (no active model) is unknown. An open alert makes a
 * machine "alerting" whatever its health says (a reading outside its range alerts without a model). */
export function healthLevel(health: number | null | undefined, openAlerts = 0): HealthLevel {
  if (openAlerts > 0) return "alerting";
  if (health === null || health === undefined) return "unknown";
  if (health >= 0.8) return "normal";
  if (health >= 0.5) return "watch";
  return "alerting";
}

// colours with WCAG AA contrast against white, for text and for white text on them
export const HEALTH_COLOR: Record<HealthLevel, string> = {
  normal: "#237a35",
  watch: "#8a5a00",
  alerting: "#c92a2a",
  unknown: "#495057",
};

export const HEALTH_LABEL: Record<HealthLevel, string> = {
  normal: "Normal",
  watch: "Watch",
  alerting: "Alerting",
  unknown: "No model",
};

export function fmtHealth(health: number | null | undefined): string {
  return health === null || health === undefined ? "–" : `${Math.round(health * 100)} %`;
}

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago"; "never" for none. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A machine with a live state applied: health, newest reading time, an open alert it reports. */
export function withState(m: Machine, st: MachineStateEvent): Machine {
  const at = new Date(st.time * 1000).toISOString();
  return {
    ...m,
    health: st.health ?? m.health,
    last_reading_at: !m.last_reading_at || at > m.last_reading_at ? at : m.last_reading_at,
    open_alerts: st.open_alert_id != null ? Math.max(m.open_alerts, 1) : m.open_alerts,
  };
}

/** Machines by line, lines and machines by name. */
export function byLine(machines: Machine[]): [string, Machine[]][] {
  const out = new Map<string, Machine[]>();
  for (const m of machines) {
    if (!out.has(m.line)) out.set(m.line, []);
    out.get(m.line)!.push(m);
  }
  for (const list of out.values()) list.sort((a, b) => a.name.localeCompare(b.name));
  return [...out.entries()].sort(([a], [b]) => a.localeCompare(b));
}

// -- alerts ---------------------------------------------------------------------------------------------------------
/** Open and unacknowledged first, then open, then closed and unacknowledged, then the rest; newest first within. */
export function alertRank(a: MachineAlert): number {
  return (a.status === "open" ? 0 : 2) + (a.acknowledged ? 1 : 0);
}

export function sortAlerts(list: MachineAlert[]): MachineAlert[] {
  return [...list].sort((a, b) => alertRank(a) - alertRank(b) || b.id - a.id);
}

/** A live alert into a list (replacing the same id). */
export function upsertAlert(list: MachineAlert[], a: MachineAlert): MachineAlert[] {
  const i = list.findIndex((x) => x.id === a.id);
  if (i < 0) return [a, ...list];
  const out = list.slice();
  out[i] = a;
  return out;
}

/** Whether an alert passes the Alerts page's filters. */
export function alertMatches(a: MachineAlert, f: { machine: string | null; status: string; acknowledged: string }): boolean {
  if (f.machine && a.machine !== f.machine) return false;
  if (f.status !== "all" && a.status !== f.status) return false;
  if (f.acknowledged === "no" && a.acknowledged) return false;
  if (f.acknowledged === "yes" && !a.acknowledged) return false;
  return true;
}

/** "oil_temp above 200 (250)", "oil_temp 4.2": what drove an alert, short. */
export function drivers(a: Pick<MachineAlert, "sensors">, max = 3): string {
  const parts = a.sensors.slice(0, max).map((d) => {
    if (d.sensor == null && typeof d.reason === "string") return d.reason; // a maintenance alert: the reason alone
    const s = String(d.sensor ?? "?");
    if (typeof d.reason === "string") return `${s} ${d.reason}${typeof d.value === "number" ? ` (${d.value})` : ""}`;
    return typeof d.score === "number" ? `${s} ${d.score.toFixed(1)}` : s;
  });
  return parts.join(", ") + (a.sensors.length > max ? ` +${a.sensors.length - max}` : "");
}

/** "45 s", "12 min", "3.5 h" */
export function duration(fromIso: string, toIso: string | null | undefined, now = Date.now()): string {
  const s = Math.max(0, ((toIso ? Date.parse(toIso) : now) - Date.parse(fromIso)) / 1000);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

// -- chart ranges and live points -------------------------------------------------------------------------------------
export const RANGES = [
  { value: "3600", label: "1 h" },
  { value: "21600", label: "6 h" },
  { value: "86400", label: "24 h" },
  { value: "604800", label: "7 d" },
  { value: "2592000", label: "30 d" },
];

/** Buckets to ask for: about one per pixel of chart width, within what the service allows. */
export function pointsFor(width: number): number {
  return Math.max(10, Math.min(5000, Math.round(width || 600)));
}

/** A series we can append to (the service's arrays, copied). */
export interface LiveSeries {
  sensor: string;
  unit: string;
  t: number[];
  n: number[];
  mean: number[];
  min: number[];
  max: number[];
}

export function liveCopy(s: Series): LiveSeries {
  return { sensor: s.sensor, unit: s.unit, t: [...s.t], n: [...s.n], mean: [...s.mean], min: [...s.min], max: [...s.max] };
}

/** A live value into a downsampled series: into the last bucket when it falls within it (count, mean, min, max
 * updated), else a new bucket at the step's grid; buckets older than `from` (the window's start) dropped. */
export function appendPoint(s: LiveSeries, t: number, v: number, step: number, from: number): void {
  const i = s.t.length - 1;
  if (i >= 0 && t < s.t[i]) return; // older than what we have: the next query shows it
  if (i >= 0 && t < s.t[i] + step) {
    const n = s.n[i] + 1;
    s.mean[i] += (v - s.mean[i]) / n;
    s.n[i] = n;
    s.min[i] = Math.min(s.min[i], v);
    s.max[i] = Math.max(s.max[i], v);
  } else {
    s.t.push(step > 0 ? Math.floor(t / step) * step : t);
    s.n.push(1);
    s.mean.push(v);
    s.min.push(v);
    s.max.push(v);
  }
  let drop = 0;
  while (drop < s.t.length && s.t[drop] < from) drop++;
  if (drop) for (const k of ["t", "n", "mean", "min", "max"] as const) s[k].splice(0, drop);
}

/** The x values of an alert's span on a chart: opened to closed (or its last anomalous reading while open). */
export function alertSpan(a: MachineAlert): [number, number] {
  return [Date.parse(a.opened_at) / 1000, Date.parse(a.closed_at ?? a.last_at) / 1000];
}
