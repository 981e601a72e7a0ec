import type { Schemas } from "../api/client";
import type { MachineModel } from "./machines";

// Predictive maintenance on the machine page: the service's predictions (RUL in cycles with its interval, or a
// failure probability), the live `maintenance` events, and the pure helpers the tests pin down (units, headline,
// merging live points).

export type Maintenance = Schemas["MaintenanceOut"];
export type MaintenancePoint = Schemas["MaintenancePointOut"];

/** `maintenance`: a machine's newest prediction, at the end of cycle `cycle` of its life. */
export interface MaintenanceEvent {
  machine: string;
  time: number; // seconds since the epoch
  cycle: number;
  cycle_s: number;
  rul: number | null;
  rul_low: number | null;
  rul_high: number | null;
  failure_probability: number | null;
  model_id: number | null;
}

export type Unit = "cycles" | "hours";
export const MAINTENANCE_KINDS = ["rul", "failure"];

/** What a maintenance model predicts and when it alerts (its params, with the service's defaults). */
export interface Rule {
  target: "rul" | "failure";
  cycle_s: number;
  alert_below_s: number | null; // RUL: an alert when the lower bound is under this many seconds
  alert_above: number | null; // failure: an alert when the probability is over this
}

export function ruleOf(model: Pick<MachineModel, "kind" | "params"> | null | undefined, cycleS?: number | null): Rule {
  const p = (model?.params ?? {}) as Record<string, unknown>;
  const target = model?.kind === "failure" || p.target === "failure" ? "failure" : "rul";
  const num = (v: unknown) => (typeof v === "number" ? v : null);
  return {
    target,
    cycle_s: num(p.cycle_s) ?? cycleS ?? 3600,
    alert_below_s: target === "rul" ? (p.alert_below_s === undefined ? 86400 : num(p.alert_below_s)) : null,
    alert_above: target === "failure" ? (p.alert_above === undefined ? 0.5 : num(p.alert_above)) : null,
  };
}

/** Cycles in the chosen unit: hours = cycles × cycle_s / 3600. */
export function inUnit(cycles: number, unit: Unit, cycleS: number): number {
  return unit === "hours" ? (cycles * cycleS) / 3600 : cycles;
}

/** The RUL alert threshold in the chosen unit, or null. */
export function thresholdIn(rule: Rule, unit: Unit): number | null {
  if (rule.alert_below_s == null) return null;
  return unit === "hours" ? rule.alert_below_s / 3600 : rule.alert_below_s / rule.cycle_s;
}

export function fmtRul(cycles: number | null | undefined, cycleS: number): string {
  if (cycles == null) return "–";
  const h = (cycles * cycleS) / 3600;
  const hours = h >= 48 ? `${(h / 24).toFixed(1)} days` : h >= 1 ? `${h.toFixed(1)} h` : `${Math.round(h * 60)} min`;
  return `${cycles.toFixed(cycles < 10 ? 1 : 0)} cycles (${hours})`;
}

export function fromEvent(e: MaintenanceEvent): MaintenancePoint {
  return {
    time: new Date(e.time * 1000).toISOString(),
    cycle: e.cycle,
    rul: e.rul,
    rul_low: e.rul_low,
    rul_high: e.rul_high,
    failure_probability: e.failure_probability,
  };
}

/** A live point into the (time-ordered) predictions: replaces one at the same time, else appended in order. */
export function addPrediction(list: MaintenancePoint[], p: MaintenancePoint, max = 50_000): MaintenancePoint[] {
  const t = Date.parse(p.time);
  const last = list.at(-1);
  if (!last || Date.parse(last.time) < t) return (list.length >= max ? list.slice(1) : list).concat(p);
  const i = list.findIndex((x) => Date.parse(x.time) >= t);
  const out = list.slice();
  if (Date.parse(out[i].time) === t) out[i] = p;
  else out.splice(i, 0, p);
  return out;
}

export type Headline =
  | { kind: "none" }
  | { kind: "rul"; rul: number; low: number | null; high: number | null; alerting: boolean; time: string; cycle: number }
  | { kind: "failure"; probability: number; alerting: boolean; time: string; cycle: number };

/** The newest prediction and whether it is past the model's alert threshold (as the service decides). */
export function headline(points: MaintenancePoint[], rule: Rule): Headline {
  const p = points.at(-1);
  if (!p) return { kind: "none" };
  if (rule.target === "failure" && p.failure_probability != null) {
    return {
      kind: "failure",
      probability: p.failure_probability,
      alerting: rule.alert_above != null && p.failure_probability > rule.alert_above,
      time: p.time,
      cycle: p.cycle,
    };
  }
  if (p.rul == null) return { kind: "none" };
  const low = p.rul_low ?? null;
  return {
    kind: "rul",
    rul: p.rul,
    low,
    high: p.rul_high ?? null,
    alerting: rule.alert_below_s != null && (low ?? p.rul) * rule.cycle_s < rule.alert_below_s,
    time: p.time,
    cycle: p.cycle,
  };
}
