import { Alert, Card, Grid, Group, Paper, SegmentedControl, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import type uPlot from "uplot";
import { api, call, type Inspection, type Schemas } from "../api/client";
import { DriftNotice } from "../components/DriftNotice";
import { DriftOverview } from "../components/DriftOverview";
import { Chart } from "../components/Chart";
import { InspectionList } from "../components/InspectionList";
import { fmtTime } from "../lib/format";
import { BUCKET_MS, WINDOW_MS } from "../lib/live";
import { navigate } from "../lib/router";
import { useSession } from "../lib/session";

function Stat({ label, value, color, testid, hint }: { label: string; value: string; color?: string; testid: string; hint?: string }) {
  return (
    <Paper withBorder p="sm">
      <Text size="xs" c="gray.7" tt="uppercase" fw={700}>
        {label}
      </Text>
      <Text size="xl" fw={700} c={color} data-testid={testid}>
        {value}
      </Text>
      {hint && (
        <Text size="xs" c="gray.7" data-testid={`${testid}-hint`}>
          {hint}
        </Text>
      )}
    </Paper>
  );
}

type LineStats = Schemas["StatsOut"];

export const PERIODS = [
  { value: "3600", label: "Last hour" },
  { value: "28800", label: "Last 8 h" },
  { value: "86400", label: "Last 24 h" },
];
export const THROUGHPUT_WINDOW_S = 300;

/** The line's numbers from the service (/api/v1/stats), the same for every viewer and after a reload: asked again
 * when live inspections arrive (at most once a second) and every 10 s. */
function useLineStats(station: string | null, seconds: number, version: number): LineStats | null {
  const [stats, setStats] = useState<LineStats | null>(null);
  const last = useRef(0);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 10_000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    let live = true;
    const wait = Math.max(0, last.current + 1000 - Date.now());
    const t = setTimeout(() => {
      last.current = Date.now();
      const since = new Date(Date.now() - seconds * 1000).toISOString();
      call(api.GET("/api/v1/stats", { params: { query: { ...(station ? { station } : {}), since } } })).then(
        (got) => live && setStats(got),
        () => {},
      );
    }, wait);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [station, seconds, version, tick]);
  return stats;
}

const chartOptions: Omit<uPlot.Options, "width" | "height"> = {
  legend: { show: true, live: false },
  scales: { x: { time: true }, rate: { range: [0, 100] } },
  axes: [
    // the page's one time format (24 h), not uPlot's own "6:45am"
    { values: (_u, ticks) => ticks.map((t) => fmtTime(new Date(t * 1000).toISOString()).slice(0, 5)) },
    { label: "per minute", size: 50 },
    { scale: "rate", side: 1, label: "defect %", grid: { show: false }, size: 50 },
  ],
  series: [
    {},
    { label: "Inspections / min", stroke: "#1c7ed6", fill: "rgba(28,126,214,0.12)", width: 2 },
    // points too: a minute with inspections between empty ones has no line to draw
    { label: "Defect rate %", stroke: "#c92a2a", scale: "rate", width: 2, points: { show: true, size: 6, fill: "#c92a2a" } },
  ],
};

export default function LivePage() {
  const { stream, station, stations } = useSession();
  const store = stream.store;
  const state = useSyncExternalStore(stream.subscribeState, stream.getState);
  useSyncExternalStore(store.subscribe, store.getVersion);

  // the latest inspections from history first, and again after a reconnect (what arrived while we were away)
  useEffect(() => {
    if (state !== "open") return;
    call(api.GET("/api/v1/inspections", { params: { query: { limit: 200 } } })).then(
      (page) => store.seed(page.items),
      () => {},
    );
  }, [state, store]);

  const visible = useMemo(() => {
    if (!station) return null;
    const out: Inspection[] = [];
    for (let i = 0; i < store.items.size; i++) {
      const x = store.items.at(i)!;
      if (x.station === station) out.push(x);
    }
    return out;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [station, store.version]);
  const count = visible ? visible.length : store.items.size;
  const at = (i: number) => (visible ? visible[i] : store.items.at(i));

  const stats = store.statsFor(station);
  const [period, setPeriod] = useState(PERIODS[0].value);
  const line = useLineStats(station, Number(period), store.version);
  const recent = useLineStats(station, THROUGHPUT_WINDOW_S, store.version);
  const periodLabel = PERIODS.find((p) => p.value === period)!.label.toLowerCase();
  const data = useMemo<uPlot.AlignedData>(() => {
    const end = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
    const xs: number[] = [];
    const tp: (number | null)[] = [];
    const rate: (number | null)[] = [];
    const byStart = new Map(stats.buckets.map((b) => [b.start, b]));
    for (let t = end - WINDOW_MS + BUCKET_MS; t <= end; t += BUCKET_MS) {
      const b = byStart.get(t);
      xs.push(t / 1000);
      tp.push(b ? b.total : 0);
      rate.push(b && b.total ? (100 * b.anomalous) / b.total : null);
    }
    return [xs, tp, rate];
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [station, store.version]);

  return (
    <Stack gap="md">
      <Group justify="space-between">
        <Title order={2}>Live line{station ? ` · ${station}` : ""}</Title>
        <Group gap="xs">
          <Text size="sm" c={state === "open" ? "#237a35" : "red.9"} data-testid="live-state">
            {state === "open" ? "● Live" : state === "connecting" ? "Connecting…" : "● Disconnected"}
          </Text>
          <SegmentedControl size="xs" aria-label="Period of the counters" value={period} onChange={setPeriod} data={PERIODS} data-testid="period" />
        </Group>
      </Group>
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        <Stat label="Passed" value={line ? String(line.good) : "…"} color="#237a35" testid="count-pass" />
        <Stat label="Defects" value={line ? String(line.anomalous) : "…"} color="red.9" testid="count-fail" />
        <Stat label="Defect rate" value={line?.defect_rate != null ? `${(100 * line.defect_rate).toFixed(1)} %` : "–"} testid="fail-rate" />
        <Stat
          label="Throughput, last 5 min"
          value={recent?.throughput_per_s != null ? `${recent.throughput_per_s.toFixed(1)} / s` : "–"}
          testid="throughput"
          hint={
            recent?.covered_s != null
              ? `${recent.parts} parts in ${recent.covered_s < 10 ? recent.covered_s.toFixed(1) : Math.round(recent.covered_s)} s the line ran`
              : "no part in the last 5 min"
          }
        />
      </SimpleGrid>
      <Text size="xs" c="gray.7" data-testid="counts-note">
        The line's counts for the {periodLabel}{line?.first_at ? ` (first part ${fmtTime(line.first_at)})` : ""}, from the service: the same
        for every viewer, in /api/v1/stats, History and the Prometheus metrics
        {line && line.duplicates > 0 && (
          <>
            {" · "}
            <span data-testid="duplicates">{line.duplicates}</span> repeated uploads listed but not counted
          </>
        )}
        {store.dropped > 0 && ` · ${store.dropped} live events were skipped because they came faster than this page could take them`}
      </Text>
      {station ? <DriftNotice station={station} /> : <DriftOverview />}
      <Grid>
        <Grid.Col span={{ base: 12, lg: 7 }}>
          <Card withBorder padding={0}>
            <Group px="sm" py={6} justify="space-between">
              <Text fw={600}>Inspections</Text>
              <Text size="xs" c="gray.7">
                newest first · click or Enter to open
              </Text>
            </Group>
            {count === 0 ? (
              <Alert m="sm" color="gray" title="No inspections yet" data-testid="live-empty">
                {stations.length === 0
                  ? "No station exists yet. An engineer creates one on the Admin page, trains a model and activates it."
                  : "Inspections appear here as soon as a camera or client sends images to POST /api/v1/stations/{station}/inspect."}
              </Alert>
            ) : (
              <InspectionList
                label="Live inspections"
                count={count}
                at={at}
                height="min(60vh, 560px)"
                onOpen={(x) => navigate(`/inspections/${x.id}`)}
              />
            )}
          </Card>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 5 }}>
          <Card withBorder>
            <Text fw={600} mb="xs">
              Last hour: throughput and defect rate
            </Text>
            <Chart label="Inspections per minute and defect rate over the last hour" options={chartOptions} data={data} />
          </Card>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
