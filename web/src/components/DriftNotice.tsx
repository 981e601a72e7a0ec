import { Alert, Anchor, Group, Text } from "@mantine/core";
import { useEffect, useState } from "react";
import { ApiError, api, call, can, type Schemas } from "../api/client";
import { fmtNum, fmtPct } from "../lib/format";
import type { StationDriftEvent } from "../lib/live";
import { useSession } from "../lib/session";
import { DriftTrend } from "./DriftTrend";
import { Thumb } from "./Thumb";

export type Drift = Schemas["StationDriftOut"];

const REFRESH_MS = 60_000;

/** The figures behind a drift level, in one line. */
export function driftFigures(d: Drift): string {
  const parts = [`${d.recent} recent parts against ${d.reference} good scores the thresholds were set on`];
  if (d.shift_auroc != null) parts.push(`shift AUROC ${fmtNum(d.shift_auroc, 2)}`);
  if (d.flagged_share != null) parts.push(`${fmtPct(d.flagged_share, 1)} flagged`);
  if (d.false_alarm_share != null && d.promised_rate != null)
    parts.push(`${fmtPct(d.false_alarm_share, 1)} overturned by reviewers against ${fmtPct(d.promised_rate, 1)} promised`);
  if (d.look_auroc != null) parts.push(`look AUROC ${fmtNum(d.look_auroc, 2)}`);
  if (d.brightness_change != null)
    parts.push(`brightness ${d.brightness_change >= 0 ? "+" : "−"}${fmtPct(Math.abs(d.brightness_change), 0)}`);
  return parts.join(" · ");
}

const ALARMED = ["watch", "drift"];

/** What an ok watch compared: the scores, and the photos where their looks or brightness were compared too. */
export function quietWhat(d: Drift): string {
  return d.look_level === "ok" || d.brightness_level === "ok" ? "scores and photos" : "scores";
}

/** The alert's title: what moved, the photos themselves (their look or brightness) or only the scores. */
export function driftTitle(station: string, d: Drift): string {
  const photos = ALARMED.includes(d.look_level) || ALARMED.includes(d.brightness_level);
  const scores = ALARMED.includes(d.scores_level) || ALARMED.includes(d.false_alarms_level);
  if (photos && !scores)
    return d.level === "drift" ? `${station}: the photos have changed` : `${station}: the photos are changing`;
  return d.level === "drift" ? `${station}: scores have drifted` : `${station}: scores are moving`;
}

/** Whether a station's recent parts still score and look as the good parts its model's thresholds were set on
 * (GET /stations/{name}/drift), refreshed every minute and at once when the service's watch sends a change of level
 * (``station_drift``): a quiet line while they do, a warning with what to do when they drift. Nothing for a station
 * that runs no model. */
export function DriftNotice({ station }: { station: string }) {
  const { me, stream } = useSession();
  const [drift, setDrift] = useState<Drift | null>(null);
  const [error, setError] = useState<string | null>(null);
  // the chart of when something moved: open while the station drifts, on request while it does not
  const [trendAsked, setTrend] = useState<boolean | null>(null);
  const showTrend = trendAsked ?? (drift != null && (drift.level === "watch" || drift.level === "drift"));

  useEffect(() => {
    let live = true;
    const load = () =>
      call(api.GET("/api/v1/stations/{name}/drift", { params: { path: { name: station } } })).then(
        (d) => {
          if (!live) return;
          setDrift(d);
          setError(null);
        },
        (e) => {
          if (!live) return;
          setDrift(null);
          // 409: the station runs no model (nothing to watch); other failures are said once, quietly
          setError(e instanceof ApiError && e.status === 409 ? null : "The drift watch could not be loaded.");
        },
      );
    setDrift(null);
    setTrend(null);
    load();
    const timer = window.setInterval(load, REFRESH_MS);
    // the service's watch found another level: load the figures now, not at the next minute
    const onChange = (e: StationDriftEvent) => {
      if (e.station === station) load();
    };
    stream.drift.add(onChange);
    return () => {
      live = false;
      window.clearInterval(timer);
      stream.drift.delete(onChange);
    };
  }, [station, stream]);

  if (error)
    return (
      <Text size="xs" c="gray.7" data-testid="drift-error">
        {error}
      </Text>
    );
  if (!drift) return null;
  const toggle = drift.trend.length >= 2 && (
    <Anchor component="button" size="xs" onClick={() => setTrend(!showTrend)} data-testid="drift-trend-toggle">
      {showTrend ? "hide the trend" : "show the trend"}
    </Anchor>
  );
  if (drift.level === "ok" || drift.level === "unknown")
    return (
      <div>
        <Text size="xs" c="gray.7" data-testid="drift-quiet">
          {drift.level === "ok" ? `Drift watch: ${quietWhat(drift)} as when the thresholds were set` : "Drift watch: not enough parts yet"} —{" "}
          {drift.level === "ok" ? driftFigures(drift) : drift.reason} {toggle}
        </Text>
        {showTrend && <DriftTrend drift={drift} />}
      </div>
    );
  return (
    <Alert
      color={drift.level === "drift" ? "red" : "yellow"}
      title={driftTitle(station, drift)}
      data-testid="drift-alert"
    >
      <Text size="sm">{drift.reason}.</Text>
      <Text size="xs" c="gray.8" mt={4}>
        {driftFigures(drift)} (model version #{drift.model_id}) {toggle}
      </Text>
      {showTrend && <DriftTrend drift={drift} />}
      {ALARMED.includes(drift.look_level) && drift.farthest.length > 0 && (
        <div data-testid="drift-farthest">
          <Text size="xs" c="gray.8" mt={6}>
            The photos that look least like the good ones:
          </Text>
          <Group gap={6} mt={2}>
            {drift.farthest.map((f) => (
              <a key={f.inspection_id} href={`#/inspections/${f.inspection_id}`} aria-label={`Inspection ${f.inspection_id}, distance ${fmtNum(f.distance, 3)}`}>
                <Thumb url={`/api/v1/inspections/${f.inspection_id}/thumbnail`} alt={`inspection ${f.inspection_id}`} />
              </a>
            ))}
          </Group>
        </div>
      )}
      {can(me.role, "engineer") && (
        <Anchor
          size="sm"
          href={`#/models?id=${drift.model_id}&station=${encodeURIComponent(station)}`}
          data-testid="drift-recalibrate"
        >
          Set the thresholds again on good parts run through {station}
        </Anchor>
      )}
    </Alert>
  );
}
