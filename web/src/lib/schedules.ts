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
