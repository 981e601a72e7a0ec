import type { Inspection, Job } from "../api/client";
import type { AlertEvent, MachineStateEvent, MachinesChangedEvent } from "./machines";
import type { MaintenanceEvent } from "./maintenance";
import type { PlanActivatedEvent, ScheduleProgressEvent } from "./schedules";
import type { TwinEvent, TwinModelEvent } from "./twin";

/** A station's drift level changed (the service's watch checks stations with new parts every minute). */
export interface StationDriftEvent {
  type: "station_drift";
  station: string;
  model_id: number | null;
  level: "unknown" | "ok" | "watch" | "drift";
  previous_level: string | null;
  reason: string;
  shift_auroc: number | null;
  false_alarm_share: number | null;
  at: string;
}

// The live event stream (WebSocket /api/v1/events) and what the pages keep of it: a bounded list of the newest
// inspections, counters, and one-minute buckets of the last hour. Events arrive at any rate; listeners are told
// at most every `NOTIFY_MS`, so 20 inspections a second cost a handful of renders a second.

export type ConnectionState = "connecting" | "open" | "lost";
export const MAX_ITEMS = 2000; // newest inspections kept for the live list
export const BUCKET_MS = 60_000;
export const WINDOW_MS = 60 * 60_000;
const NOTIFY_MS = 250;

export interface Bucket {
  start: number; // ms since epoch, a multiple of BUCKET_MS
  total: number;
  anomalous: number;
}

export type JobEvent = Pick<Job, "id" | "kind" | "status" | "progress" | "message">;

/** Newest first, bounded: a ring buffer so adding is O(1) however long the page runs. */
export class Ring<T> {
  private buf: (T | undefined)[];
  private head = 0; // index of the next write
  size = 0;
  constructor(readonly capacity: number) {
    this.buf = new Array(capacity);
  }
  push(item: T) {
    this.buf[this.head] = item;
    this.head = (this.head + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }
  /** i = 0 is the newest. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.size) return undefined;
    return this.buf[(this.head - 1 - i + this.capacity * 2) % this.capacity];
  }
  clear() {
    this.buf = new Array(this.capacity);
    this.head = 0;
    this.size = 0;
  }
}

export interface Stats {
  passed: number; // since the page opened (or the counters were reset)
  failed: number;
  buckets: Bucket[]; // oldest first, at most an hour's worth
}

const ALL = "*";

export class LiveStore {
  items = new Ring<Inspection>(MAX_ITEMS);
  ids = new Set<number>();
  stats = new Map<string, Stats>();
  dropped = 0;
  duplicates = 0;
  since = Date.now();
  version = 0;
  private listeners = new Set<() => void>();
  private timer: ReturnType<typeof setTimeout> | null = null;

  subscribe = (f: () => void) => {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  };
  getVersion = () => this.version;

  private changed() {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.version++;
      this.listeners.forEach((f) => f());
    }, NOTIFY_MS);
  }

  /** Counters and buckets of one station, or of all (null). */
  statsFor(station: string | null): Stats {
    return this.stats.get(station ?? ALL) ?? { passed: 0, failed: 0, buckets: [] };
  }

  private tally(key: string, time: number, anomalous: boolean, counted: boolean) {
    let st = this.stats.get(key);
    if (!st) this.stats.set(key, (st = { passed: 0, failed: 0, buckets: [] }));
    if (counted) {
      if (anomalous) st.failed++;
      else st.passed++;
    }
    const buckets = st.buckets;
    const start = Math.floor(time / BUCKET_MS) * BUCKET_MS;
    let b = buckets[buckets.length - 1];
    if (!b || b.start < start) {
      b = { start, total: 0, anomalous: 0 };
      buckets.push(b);
    } else if (b.start > start) {
      // an older inspection (seeding from history): its bucket, inserted in order when missing
      let i = buckets.findIndex((x) => x.start >= start);
      if (i < 0) i = buckets.length;
      if (buckets[i]?.start !== start) buckets.splice(i, 0, { start, total: 0, anomalous: 0 });
      b = buckets[i];
    }
    b.total++;
    if (anomalous) b.anomalous++;
    const cutoff = Date.now() - WINDOW_MS - BUCKET_MS;
    while (buckets.length && buckets[0].start < cutoff) buckets.shift();
  }

  private count(x: Inspection, counted: boolean) {
    if (x.duplicate_of != null) {
      // a repeated upload of the same part: listed, but not a part of the line's counts (as in the service's /stats)
      if (counted) this.duplicates++;
      return;
    }
    const t = Date.parse(x.created_at);
    const bad = x.verdict === "anomalous";
    this.tally(ALL, t, bad, counted);
    this.tally(x.station, t, bad, counted);
  }

  add(x: Inspection) {
    if (this.ids.has(x.id)) return;
    this.ids.add(x.id);
    this.items.push(x);
    if (this.ids.size > MAX_ITEMS * 2) {
      this.ids = new Set(Array.from({ length: this.items.size }, (_, i) => this.items.at(i)!.id));
    }
    this.count(x, true);
    this.changed();
  }

  /** Recent history (newest first) shown before live events: into the list and the chart, not the counters. */
  seed(history: Inspection[]) {
    const fresh = history.filter((x) => !this.ids.has(x.id)).reverse();
    for (const x of fresh) {
      this.ids.add(x.id);
      this.items.push(x);
      this.count(x, false);
    }
    // seeded ones may be older than live ones already there: keep the ring in id order (once per page or reconnect)
    if (fresh.length) {
      const all = Array.from({ length: this.items.size }, (_, i) => this.items.at(i)!).sort((a, b) => a.id - b.id);
      this.items.clear();
      all.forEach((x) => this.items.push(x));
    }
    this.changed();
  }

  noteDropped(n: number) {
    this.dropped += n;
    this.changed();
  }

  resetCounters() {
    for (const st of this.stats.values()) {
      st.passed = 0;
      st.failed = 0;
    }
    this.dropped = 0;
    this.duplicates = 0;
    this.since = Date.now();
    this.changed();
  }
}

type Listener<T> = (x: T) => void;

/** One WebSocket for the whole app, reconnecting with backoff; the state drives the connection banner. */
export class EventStream {
  state: ConnectionState = "connecting";
  wasLost = false;
  private ws: WebSocket | null = null;
  private retry = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private stateListeners = new Set<() => void>();
  readonly inspections = new Set<Listener<Inspection>>();
  readonly jobs = new Set<Listener<JobEvent>>();
  readonly machineStates = new Set<Listener<MachineStateEvent>>();
  readonly alerts = new Set<Listener<AlertEvent>>();
  readonly machineChanges = new Set<Listener<MachinesChangedEvent>>();
  readonly maintenance = new Set<Listener<MaintenanceEvent>>();
  readonly scheduleProgress = new Set<Listener<ScheduleProgressEvent>>();
  readonly plans = new Set<Listener<PlanActivatedEvent>>();
  readonly twinEvents = new Set<Listener<TwinEvent>>();
  readonly twinModels = new Set<Listener<TwinModelEvent>>();
  readonly drift = new Set<Listener<StationDriftEvent>>();
  readonly store = new LiveStore();

  constructor(
    private token: string,
    private onAuthFailed: () => void = () => {},
    private url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/events`,
  ) {
    this.connect();
  }

  subscribeState = (f: () => void) => {
    this.stateListeners.add(f);
    return () => this.stateListeners.delete(f);
  };
  getState = () => this.state;

  private setState(s: ConnectionState) {
    if (s === "lost") this.wasLost = true;
    this.state = s;
    this.stateListeners.forEach((f) => f());
  }

  private connect() {
    if (this.closed) return;
    const ws = new WebSocket(`${this.url}?token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    ws.onmessage = (m) => {
      let ev: { type: string; inspection?: Inspection; job?: JobEvent; count?: number; alert?: AlertEvent["alert"] };
      try {
        ev = JSON.parse(m.data as string);
      } catch {
        return;
      }
      if (ev.type === "hello") {
        this.retry = 0;
        this.setState("open");
      } else if (ev.type === "inspection" && ev.inspection) {
        this.store.add(ev.inspection);
        this.inspections.forEach((f) => f(ev.inspection!));
      } else if (ev.type === "job" && ev.job) {
        this.jobs.forEach((f) => f(ev.job!));
      } else if (ev.type === "machine_state") {
        this.machineStates.forEach((f) => f(ev as unknown as MachineStateEvent));
      } else if (ev.type === "alert" && ev.alert) {
        this.alerts.forEach((f) => f(ev as unknown as AlertEvent));
      } else if (ev.type === "machines_changed" || ev.type === "machine_model_activated") {
        this.machineChanges.forEach((f) => f(ev as unknown as MachinesChangedEvent));
      } else if (ev.type === "maintenance") {
        this.maintenance.forEach((f) => f(ev as unknown as MaintenanceEvent));
      } else if (ev.type === "schedule_progress") {
        this.scheduleProgress.forEach((f) => f(ev as unknown as ScheduleProgressEvent));
      } else if (ev.type === "plan_activated") {
        this.plans.forEach((f) => f(ev as unknown as PlanActivatedEvent));
      } else if (ev.type === "twin_event") {
        this.twinEvents.forEach((f) => f(ev as unknown as TwinEvent));
      } else if (ev.type === "twin_model") {
        this.twinModels.forEach((f) => f(ev as unknown as TwinModelEvent));
      } else if (ev.type === "station_drift") {
        this.drift.forEach((f) => f(ev as unknown as StationDriftEvent));
      } else if (ev.type === "dropped" && ev.count) {
        this.store.noteDropped(ev.count);
      }
    };
    ws.onclose = (e) => {
      if (this.ws !== ws || this.closed) return;
      if (e.code === 4401) {
        // the token expired or the user was deactivated: reconnecting cannot help
        this.closed = true;
        this.onAuthFailed();
        return;
      }
      this.setState("lost");
      const delay = Math.min(10_000, 500 * 2 ** this.retry++);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  /** Try now (the banner's "reconnect now"). */
  reconnect() {
    if (this.timer) clearTimeout(this.timer);
    this.retry = 0;
    this.ws?.close();
    this.connect();
  }

  close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close();
  }
}
