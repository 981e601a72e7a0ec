import { Alert, Anchor, Group, Text } from "@mantine/core";
import { useEffect, useState } from "react";
import type { Station } from "../api/client";
import { fmtDateTime, fmtTime } from "../lib/format";
import type { StationDriftEvent } from "../lib/live";
import { useSession } from "../lib/session";

export interface StationLevel {
  station: string;
  level: string;
  since: string | null;
}

/** Each station's drift level: as the station list had it, then as the service's watch sends its changes (a change
 * for another model than the one the list knew is the station's new model's: taken as it comes). */
export function levelsOf(stations: Station[], changes: StationDriftEvent[]): StationLevel[] {
  const out = new Map<string, StationLevel>(
    stations.map((s) => [s.name, { station: s.name, level: s.drift_level ?? "unknown", since: s.drift_since ?? null }]),
  );
  for (const c of changes) if (out.has(c.station)) out.set(c.station, { station: c.station, level: c.level, since: c.at || null });
  return [...out.values()];
}

const ORDER = ["drift", "watch"];

/** When a level began: the time of day when it is today, else the date too (a station can drift for days). */
export function sinceText(iso: string, now: Date = new Date()): string {
  return new Date(iso).toDateString() === now.toDateString() ? fmtTime(iso) : fmtDateTime(iso);
}

/** The drift watch over every station, for the Live page with no station chosen: a warning naming the stations
 * whose scores or photos moved (drift first), each a link that chooses it (its notice says why and what to do); a
 * quiet line while none did. Nothing before any station was checked. */
export function DriftOverview() {
  const { stations, stream, setStation } = useSession();
  const [changes, setChanges] = useState<StationDriftEvent[]>([]);

  useEffect(() => {
    setChanges([]);
    const onChange = (e: StationDriftEvent) => setChanges((prev) => [...prev, e]);
    stream.drift.add(onChange);
    return () => {
      stream.drift.delete(onChange);
    };
  }, [stream, stations]);

  const levels = levelsOf(stations, changes);
  const moved = levels.filter((l) => ORDER.includes(l.level)).sort((a, b) => ORDER.indexOf(a.level) - ORDER.indexOf(b.level));
  const checked = levels.filter((l) => l.level !== "unknown").length;
  if (checked === 0) return null;
  if (moved.length === 0)
    return (
      <Text size="xs" c="gray.7" data-testid="drift-overview-quiet">
        Drift watch: {checked === 1 ? "the one station checked" : `all ${checked} stations checked`} — parts score and look as
        when the thresholds were set
      </Text>
    );
  const worst = moved[0].level;
  return (
    <Alert
      color={worst === "drift" ? "red" : "yellow"}
      title={moved.length === 1 ? "A station's parts have moved" : `${moved.length} stations' parts have moved`}
      data-testid="drift-overview"
    >
      <Group gap="md">
        {moved.map((l) => (
          <Anchor component="button" size="sm" key={l.station} onClick={() => setStation(l.station)} data-testid="drift-overview-station">
            {l.station}: {l.level}
            {l.since ? ` since ${sinceText(l.since)}` : ""}
          </Anchor>
        ))}
      </Group>
      <Text size="xs" c="gray.8" mt={4}>
        Choose a station to see what moved, its trend and what to do.
      </Text>
    </Alert>
  );
}
