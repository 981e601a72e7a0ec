import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Center,
  Group,
  Loader,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from "@mantine/core";
import { useElementSize } from "@mantine/hooks";
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { api, call, type ApiError } from "../api/client";
import { HealthBadge } from "../components/Health";
import { MachineModels } from "../components/MachineModels";
import { MaintenanceSection } from "../components/Maintenance";
import { SensorEditor } from "../components/SensorEditor";
import { type ChartFrame, SensorChart } from "../components/SensorChart";
import { fmtDateTime, fmtNum } from "../lib/format";
import {
  type AlertEvent,
  type LiveSeries,
  type Machine,
  type MachineAlert,
  type MachineStateEvent,
  RANGES,
  SCORE,
  ago,
  appendPoint,
  drivers,
  duration,
  liveCopy,
  pointsFor,
  sortAlerts,
  upsertAlert,
  withState,
} from "../lib/machines";
import { useSession } from "../lib/session";
import { useTick } from "./Machines";

const REQUERY_MS = 5 * 60_000; // live appends approximate the buckets; the service's figures replace them this often
const ALERTS_SHOWN = 100;

interface Loaded {
  series: LiveSeries[];
  step: number;
  resolution: string;
  threshold: number | null;
}

/** The machine's readings over the window, downsampled by the service to about `points` buckets, with live values
 * appended while the window ends now. */
function useReadings(name: string, seconds: number, zoom: [number, number] | null, points: number, frame: ChartFrame) {
  const { stream } = useSession();
  const state = useSyncExternalStore(stream.subscribeState, stream.getState);
  const [data, setData] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [again, setAgain] = useState(0);
  const live = zoom === null;

  useEffect(() => {
    if (points === 0) return;
    let current = true;
    const to = zoom ? zoom[1] : Date.now() / 1000;
    const from = zoom ? zoom[0] : to - seconds;
    setLoading(true);
    call(
      api.GET("/api/v1/machines/{name}/readings", {
        params: {
          path: { name },
          query: { start: new Date(from * 1000).toISOString(), end: new Date(to * 1000).toISOString(), points },
        },
      }),
    ).then(
      (r) => {
        if (!current) return;
        frame.from = from;
        frame.to = to;
        // the score first, then the sensors in their defined order
        const series = [...r.series.filter((s) => s.sensor === SCORE), ...r.series.filter((s) => s.sensor !== SCORE)].map(liveCopy);
        setData({ series, step: r.step_s, resolution: r.resolution, threshold: r.threshold ?? null });
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (!current) return;
        setError((e as Error).message);
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [name, seconds, zoom, points, frame, again]);

  // after a reconnect (readings missed meanwhile) and every few minutes while live
  useEffect(() => {
    if (state === "open" && stream.wasLost) setAgain((n) => n + 1);
  }, [state, stream]);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => setAgain((n) => n + 1), REQUERY_MS);
    return () => clearInterval(t);
  }, [live]);

  // live values; the window slides with the clock even when no reading arrives. The series are changed in place
  // (appending to arrays of thousands of buckets), outside React's state updaters, then handed on as new objects.
  const current = useRef<Loaded | null>(null);
  current.current = data;
  useEffect(() => {
    if (!live) return;
    const onState = (st: MachineStateEvent) => {
      const d = current.current;
      if (st.machine !== name || !d) return;
      frame.to = Math.max(Date.now() / 1000, st.time);
      frame.from = frame.to - seconds;
      const series = d.series.map((s) => {
        const v = s.sensor === SCORE ? st.score : st.values[s.sensor];
        if (typeof v !== "number") return s;
        appendPoint(s, st.time, v, d.step, frame.from);
        return { ...s };
      });
      setData({ ...d, series });
    };
    const slide = setInterval(() => {
      const d = current.current;
      if (!d) return;
      frame.to = Math.max(frame.to, Date.now() / 1000);
      frame.from = frame.to - seconds;
      setData({ ...d, series: d.series.map((s) => ({ ...s })) });
    }, 15_000);
    stream.machineStates.add(onState);
    return () => {
      stream.machineStates.delete(onState);
      clearInterval(slide);
    };
  }, [live, name, seconds, frame, stream]);

  return { data, error, loading };
}

function AlertHistory({ alerts }: { alerts: MachineAlert[] }) {
  if (alerts.length === 0) {
    return (
      <Text size="sm" c="gray.7" data-testid="machine-no-alerts">
        No alert so far.
      </Text>
    );
  }
  return (
    <Table.ScrollContainer minWidth={640}>
      <Table data-testid="machine-alerts">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Alert</Table.Th>
            <Table.Th>Opened</Table.Th>
            <Table.Th>Lasted</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th>Peak score</Table.Th>
            <Table.Th>Sensors</Table.Th>
            <Table.Th>Acknowledged</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {alerts.map((a) => (
            <Table.Tr key={a.id} data-testid="machine-alert-row" data-id={a.id} data-status={a.status}>
              <Table.Td>
                <Anchor href={`#/alerts?id=${a.id}`}>#{a.id}</Anchor>
                {a.kind !== "anomaly" && (
                  <Text span size="xs" c="grape.9" fw={600} ml={6} data-testid="alert-kind">
                    {a.kind}
                  </Text>
                )}
              </Table.Td>
              <Table.Td>{fmtDateTime(a.opened_at)}</Table.Td>
              <Table.Td>{duration(a.opened_at, a.closed_at ?? a.last_at)}</Table.Td>
              <Table.Td>
                <Badge color={a.status === "open" ? "red.9" : "gray.7"} variant="filled">
                  {a.status}
                </Badge>
              </Table.Td>
              <Table.Td>{a.peak_score > 0 ? fmtNum(a.peak_score, 2) : "–"}</Table.Td>
              <Table.Td>{drivers(a)}</Table.Td>
              <Table.Td>{a.acknowledged ? `by ${a.acknowledged_by ?? "?"}` : "not yet"}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export default function MachinePage({ name }: { name: string }) {
  const { stream } = useSession();
  const [machine, setMachine] = useState<Machine | null>(null);
  const [missing, setMissing] = useState<string | null>(null);
  const [values, setValues] = useState<Record<string, number>>({});
  const [alerts, setAlerts] = useState<MachineAlert[]>([]);
  const [range, setRange] = useState(RANGES[0].value);
  const [zoom, setZoom] = useState<[number, number] | null>(null);
  const { ref: chartsRef, width } = useElementSize();
  useTick(5000);

  const frame = useRef<ChartFrame>({ from: 0, to: 0, alerts: [], onZoom: () => {} }).current;
  frame.onZoom = (a, b) => setZoom([a, b]);
  frame.alerts = alerts;

  const loadMachine = useCallback(async () => {
    try {
      setMachine(await call(api.GET("/api/v1/machines/{name}", { params: { path: { name } } })));
    } catch (e) {
      setMissing((e as ApiError).message);
    }
  }, [name]);
  const loadAlerts = useCallback(async () => {
    try {
      setAlerts(await call(api.GET("/api/v1/alerts", { params: { query: { machine: name, limit: ALERTS_SHOWN } } })));
    } catch {
      /* the page shows the machine's own error */
    }
  }, [name]);
  useEffect(() => {
    loadMachine();
    loadAlerts();
  }, [loadMachine, loadAlerts]);

  useEffect(() => {
    const onState = (st: MachineStateEvent) => {
      if (st.machine !== name) return;
      setMachine((m) => m && withState(m, st));
      setValues((v) => ({ ...v, ...st.values }));
    };
    const onAlert = (e: AlertEvent) => {
      if (e.alert.machine !== name) return;
      setAlerts((list) => upsertAlert(list, e.alert));
      if (e.change === "opened" || e.change === "closed") loadMachine();
    };
    const onChange = (e: { machine?: string; machines?: string[] }) => {
      if (e.machine === name || e.machines?.includes(name)) loadMachine();
    };
    stream.machineStates.add(onState);
    stream.alerts.add(onAlert);
    stream.machineChanges.add(onChange);
    return () => {
      stream.machineStates.delete(onState);
      stream.alerts.delete(onAlert);
      stream.machineChanges.delete(onChange);
    };
  }, [stream, name, loadMachine]);

  const points = width > 0 ? pointsFor(Math.round(width / 100) * 100) : 0;
  const { data, error, loading } = useReadings(name, Number(range), zoom, points, frame);
  const sensors = useMemo(() => new Map((machine?.sensors ?? []).map((s) => [s.name, s])), [machine]);
  const sorted = useMemo(() => sortAlerts(alerts), [alerts]);

  if (missing) {
    return (
      <Alert color="yellow" title={`Machine ${name}`} data-testid="machine-missing">
        {missing} <Anchor href="#/machines">Back to the machines</Anchor>
      </Alert>
    );
  }
  if (!machine) {
    return (
      <Center p="xl">
        <Loader aria-label="Loading the machine" />
      </Center>
    );
  }
  const score = data?.series.find((s) => s.sensor === SCORE);
  const hasScores = !!score && score.t.length > 0;
  return (
    <Stack>
      <Group justify="space-between" align="flex-start">
        <div>
          <Text size="sm">
            <Anchor href="#/machines">Machines</Anchor> / {machine.line}
          </Text>
          <Title order={2} data-testid="machine-name">
            {machine.name}
          </Title>
          <Text size="sm" c="gray.7">
            {machine.type || "machine"}
            {machine.description ? ` · ${machine.description}` : ""}
            {machine.stations.length ? ` · feeds ${machine.stations.join(", ")}` : ""}
          </Text>
        </div>
        <Group gap="sm">
          <HealthBadge health={machine.health} openAlerts={machine.open_alerts} testid="machine-health" />
          {machine.open_alerts > 0 ? (
            <Anchor href={`#/alerts?machine=${encodeURIComponent(machine.name)}`} c="red.9" fw={600} data-testid="machine-open-alerts">
              {machine.open_alerts} open alert{machine.open_alerts === 1 ? "" : "s"}
            </Anchor>
          ) : (
            <Text size="sm" data-testid="machine-open-alerts">
              No open alert
            </Text>
          )}
          <Text size="sm" c="gray.7" data-testid="machine-last-reading">
            last reading {ago(machine.last_reading_at)}
          </Text>
        </Group>
      </Group>

      <Card withBorder>
        <Group justify="space-between" mb="xs">
          <Title order={3} size="h4">
            Sensors
          </Title>
          <Group gap="xs">
            {zoom ? (
              <>
                <Text size="sm" data-testid="zoomed">
                  {fmtDateTime(new Date(zoom[0] * 1000).toISOString())} to {fmtDateTime(new Date(zoom[1] * 1000).toISOString())}
                </Text>
                <Button size="xs" variant="default" onClick={() => setZoom(null)} data-testid="zoom-out">
                  Back to live
                </Button>
              </>
            ) : (
              <Text size="xs" c="gray.7">
                drag across a chart to zoom
              </Text>
            )}
            <SegmentedControl
              size="xs"
              aria-label="Time range of the charts"
              value={range}
              onChange={(v) => {
                setZoom(null);
                setRange(v);
              }}
              data={RANGES}
              data-testid="range"
            />
          </Group>
        </Group>
        <Text size="xs" c="gray.7" mb="xs" data-testid="chart-resolution">
          {data
            ? `${data.resolution === "raw" ? "readings" : data.resolution === "1m" ? "per-minute roll-ups" : "per-hour roll-ups"} in buckets of ${data.step < 120 ? `${data.step} s` : data.step < 7200 ? `${data.step / 60} min` : `${data.step / 3600} h`}: band from minimum to maximum, line the mean${zoom ? "" : "; live values appended"}`
            : "…"}
          {loading && " · loading…"}
        </Text>
        {error && (
          <Alert color="red" mb="xs">
            {error}
          </Alert>
        )}
        <div ref={chartsRef} data-testid="charts">
          {data && (
            <Stack gap="sm">
              {score && (
                <div data-testid="chart" data-sensor={SCORE} data-points={score.t.length}>
                  <Text size="sm" fw={600}>
                    Anomaly score{data.threshold != null ? ` (threshold ${data.threshold})` : ""}
                  </Text>
                  {hasScores ? (
                    <SensorChart series={score} step={data.step} frame={frame} threshold={data.threshold} height={140} />
                  ) : (
                    <Text size="sm" c="gray.7" data-testid="no-scores">
                      {machine.active_model_id == null
                        ? "No active sensor model: readings are not scored (readings outside a sensor's expected range still alert). An engineer trains one below."
                        : "No scored readings in this range."}
                    </Text>
                  )}
                </div>
              )}
              <SimpleGrid cols={{ base: 1, xl: 2 }}>
                {data.series
                  .filter((s) => s.sensor !== SCORE)
                  .map((s) => {
                    const def = sensors.get(s.sensor);
                    return (
                      <div key={s.sensor} data-testid="chart" data-sensor={s.sensor} data-points={s.t.length}>
                        <Group justify="space-between" gap="xs">
                          <Text size="sm" fw={600}>
                            {s.sensor}
                            {s.unit ? ` (${s.unit})` : ""}
                          </Text>
                          <Text size="sm" data-testid="sensor-value">
                            {values[s.sensor] !== undefined ? `now ${Number(values[s.sensor].toPrecision(5))}${s.unit ? ` ${s.unit}` : ""}` : ""}
                          </Text>
                        </Group>
                        {s.t.length ? (
                          <SensorChart series={s} step={data.step} frame={frame} low={def?.low} high={def?.high} />
                        ) : (
                          <Text size="sm" c="gray.7" py="md">
                            No readings in this range.
                          </Text>
                        )}
                      </div>
                    );
                  })}
              </SimpleGrid>
              {data.series.length === 0 && (
                <Text size="sm" c="gray.7">
                  This machine has no sensors yet.
                </Text>
              )}
            </Stack>
          )}
        </div>
      </Card>

      <MaintenanceSection machine={machine} onChanged={loadMachine} />

      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          Alert history
        </Title>
        <AlertHistory alerts={sorted} />
      </Card>

      <SensorEditor machine={machine} onSaved={setMachine} />

      <MachineModels machine={machine} onChanged={loadMachine} chartRange={data ? [frame.from, frame.to] : null} />
    </Stack>
  );
}
