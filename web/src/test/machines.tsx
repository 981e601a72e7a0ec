import { MantineProvider } from "@mantine/core";
import { render } from "@testing-library/react";
import { vi } from "vitest";
import type { Model, Role } from "../api/client";
import { LiveStore, type StationDriftEvent } from "../lib/live";
import type { AlertEvent, Machine, MachineAlert, MachineStateEvent, MachinesChangedEvent } from "../lib/machines";
import type { MaintenanceEvent } from "../lib/maintenance";
import type { PlanActivatedEvent, ScheduleProgressEvent } from "../lib/schedules";
import type { TwinEvent, TwinModelEvent } from "../lib/twin";
import { SessionContext, type Session } from "../lib/session";

// What the machine pages' tests share: a live stream whose events the test sends, a session of a role, a fetch
// that answers by path and records what was sent.

export function fakeStream() {
  return {
    store: new LiveStore(),
    jobs: new Set<(j: unknown) => void>(),
    machineStates: new Set<(e: MachineStateEvent) => void>(),
    alerts: new Set<(e: AlertEvent) => void>(),
    machineChanges: new Set<(e: MachinesChangedEvent) => void>(),
    maintenance: new Set<(e: MaintenanceEvent) => void>(),
    scheduleProgress: new Set<(e: ScheduleProgressEvent) => void>(),
    plans: new Set<(e: PlanActivatedEvent) => void>(),
    twinEvents: new Set<(e: TwinEvent) => void>(),
    twinModels: new Set<(e: TwinModelEvent) => void>(),
    drift: new Set<(e: StationDriftEvent) => void>(),
    state: "open",
    wasLost: false,
    subscribeState: () => () => {},
    getState: () => "open",
  };
}
export type FakeStream = ReturnType<typeof fakeStream>;

export function renderAs(role: Role, ui: React.ReactNode, stream: FakeStream = fakeStream(), over: Partial<Session> = {}) {
  const session: Session = {
    me: { name: "ann", role },
    stream: stream as unknown as Session["stream"],
    stations: [],
    reloadStations: async () => {},
    station: null,
    setStation: () => {},
    logout: () => {},
    ...over,
  };
  const r = render(
    <MantineProvider env="test">
      <SessionContext.Provider value={session}>{ui}</SessionContext.Provider>
    </MantineProvider>,
  );
  return { ...r, stream };
}

export interface Sent {
  method: string;
  url: URL;
  body: unknown;
}

/** fetch answered by `routes` ("GET /api/v1/machines" -> body, or a function of the request); 404 otherwise. */
type Route = ((s: Sent) => unknown) | unknown[] | { [key: string]: unknown };

export function stubFetch(routes: Record<string, Route>): Sent[] {
  const sent: Sent[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = input instanceof Request ? input : new Request(new URL(String(input), location.origin), init);
      const url = new URL(req.url, location.origin);
      const text = req.method === "GET" ? "" : await req.text();
      let sentBody: unknown = undefined;
      if (text) {
        try {
          sentBody = JSON.parse(text);
        } catch {
          sentBody = text; // a multipart form: its text
        }
      }
      const s: Sent = { method: req.method, url, body: sentBody };
      sent.push(s);
      const key = `${req.method} ${url.pathname}`;
      if (!(key in routes)) return new Response(JSON.stringify({ detail: `no route ${key}` }), { status: 404 });
      const r = routes[key];
      const body = typeof r === "function" ? (r as (s: Sent) => unknown)(s) : r;
      return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
    }),
  );
  return sent;
}

export function machine(over: Partial<Machine> = {}): Machine {
  return {
    id: 1,
    name: "press-1",
    line: "L1",
    type: "press",
    description: "",
    stations: [],
    sensors: [
      { name: "oil_temp", unit: "°C", low: null, high: 200 },
      { name: "pressure", unit: "bar", low: null, high: null },
    ],
    active_model_id: null,
    previous_model_id: null,
    health: null,
    health_at: null,
    last_reading_at: null,
    open_alerts: 0,
    created_at: "2026-12-01T08:00:00Z",
    ...over,
  };
}

export function alert(over: Partial<MachineAlert> = {}): MachineAlert {
  return {
    id: 1,
    machine: "press-1",
    kind: "anomaly",
    status: "open",
    opened_at: "2026-12-03T10:00:00Z",
    last_at: "2026-12-03T10:00:30Z",
    closed_at: null,
    peak_score: 12.5,
    anomalous_readings: 4,
    sensors: [{ sensor: "oil_temp", score: 12.5 }],
    model_id: 3,
    acknowledged: false,
    acknowledged_by: null,
    acknowledged_at: null,
    ...over,
  };
}

/** A ready vision model version (the Models page's), as the API lists it. */
export function modelVersion(over: Partial<Model> = {}): Model {
  return {
    id: 5,
    name: "washers #2",
    method: "combined",
    backbone: "efficientnet_lite0",
    image_size: 256,
    status: "ready",
    threshold: 2.1,
    metrics: null,
    dataset_id: 1,
    job_id: 2,
    created_by: 1,
    created_at: "2026-12-06T09:00:00Z",
    stations: [],
    ...over,
  } as Model;
}
