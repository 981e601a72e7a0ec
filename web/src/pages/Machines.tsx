import { Alert, Anchor, Badge, Card, Center, FileButton, Button, Group, Loader, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { api, call, can, postForm, type Schemas } from "../api/client";
import { HealthBadge, HealthBar } from "../components/Health";
import { type AlertEvent, type Line, type Machine, type MachineStateEvent, ago, byLine, healthLevel, withState } from "../lib/machines";
import { useSession } from "../lib/session";
import { Feedback } from "../components/Feedback";

const FLUSH_MS = 500; // live states are applied at most twice a second, however many machines report

/** Machines and their newest values, kept up to date from the live stream; reloaded when alerts or definitions
 * change (rare) and after a reconnect (what changed while the page was away). */
export function useMachines(): {
  machines: Machine[] | null;
  lines: Line[];
  values: Record<string, Record<string, number>>;
  error: string | null;
  reload: () => void;
} {
  const { stream } = useSession();
  const state = useSyncExternalStore(stream.subscribeState, stream.getState);
  const [machines, setMachines] = useState<Machine[] | null>(null);
  const [lines, setLines] = useState<Line[]>([]);
  const [values, setValues] = useState<Record<string, Record<string, number>>>({});
  const [error, setError] = useState<string | null>(null);
  const pending = useRef(new Map<string, MachineStateEvent>());
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const reloadTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const load = useCallback(async () => {
    try {
      const [ms, ls] = await Promise.all([call(api.GET("/api/v1/machines")), call(api.GET("/api/v1/lines"))]);
      setMachines(ms);
      setLines(ls);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, []);
  const reload = useCallback(() => {
    if (reloadTimer.current) return;
    reloadTimer.current = setTimeout(() => {
      reloadTimer.current = null;
      load();
    }, 300);
  }, [load]);

  useEffect(() => {
    load();
  }, [load]);
  useEffect(() => {
    if (state === "open" && stream.wasLost) load();
  }, [state, stream, load]);

  useEffect(() => {
    const flush = () => {
      timer.current = null;
      const states = [...pending.current.values()];
      pending.current.clear();
      const by = new Map(states.map((s) => [s.machine, s]));
      setMachines((ms) => ms && ms.map((m) => (by.has(m.name) ? withState(m, by.get(m.name)!) : m)));
      setValues((v) => {
        const out = { ...v };
        for (const s of states) out[s.machine] = { ...out[s.machine], ...s.values };
        return out;
      });
    };
    const onState = (s: MachineStateEvent) => {
      pending.current.set(s.machine, s);
      if (!timer.current) timer.current = setTimeout(flush, FLUSH_MS);
    };
    // open alert counts change when an alert opens or closes (not when it is extended or acknowledged)
    const onAlert = (e: AlertEvent) => {
      if (e.change === "opened" || e.change === "closed") reload();
    };
    stream.machineStates.add(onState);
    stream.alerts.add(onAlert);
    stream.machineChanges.add(reload);
    return () => {
      stream.machineStates.delete(onState);
      stream.alerts.delete(onAlert);
      stream.machineChanges.delete(reload);
      if (timer.current) clearTimeout(timer.current);
      if (reloadTimer.current) clearTimeout(reloadTimer.current);
      timer.current = reloadTimer.current = null;
    };
  }, [stream, reload]);

  return { machines, lines, values, error, reload };
}

/** Re-render every `ms` (relative times such as "12 s ago"). */
export function useTick(ms: number) {
  const [, set] = useState(0);
  useEffect(() => {
    const t = setInterval(() => set((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
}

function MachineCard({ m, values }: { m: Machine; values?: Record<string, number> }) {
  const shown = m.sensors.slice(0, 4);
  return (
    <Card withBorder padding="sm" data-testid="machine-card" data-machine={m.name} data-level={healthLevel(m.health, m.open_alerts)}>
      <Group justify="space-between" wrap="nowrap" gap="xs">
        <Anchor href={`#/machines/${encodeURIComponent(m.name)}`} fw={700} data-testid="machine-link">
          {m.name}
        </Anchor>
        <HealthBadge health={m.health} openAlerts={m.open_alerts} testid="machine-health" />
      </Group>
      <Text size="xs" c="gray.7" mb={6}>
        {m.type || "machine"} · {m.sensors.length} sensor{m.sensors.length === 1 ? "" : "s"}
        {m.active_model_id == null ? " · no active model" : ""}
      </Text>
      <HealthBar health={m.health} openAlerts={m.open_alerts} label={`Health of ${m.name}`} />
      <Group justify="space-between" mt={6} gap="xs">
        {m.open_alerts > 0 ? (
          <Anchor href={`#/alerts?machine=${encodeURIComponent(m.name)}`} size="sm" c="red.9" fw={600} data-testid="machine-open-alerts">
            {m.open_alerts} open alert{m.open_alerts === 1 ? "" : "s"}
          </Anchor>
        ) : (
          <Text size="sm" c="gray.7" data-testid="machine-open-alerts">
            No open alert
          </Text>
        )}
        <Text size="xs" c="gray.7" data-testid="machine-last-reading">
          last reading {ago(m.last_reading_at)}
        </Text>
      </Group>
      {values && shown.length > 0 && (
        <Group gap={4} mt={6} data-testid="machine-values">
          {shown.map((s) =>
            values[s.name] !== undefined ? (
              <Badge key={s.name} variant="light" color="gray" tt="none" fw={500}>
                {s.name} {Number(values[s.name].toPrecision(4))}
                {s.unit ? ` ${s.unit}` : ""}
              </Badge>
            ) : null,
          )}
        </Group>
      )}
    </Card>
  );
}

export default function MachinesPage() {
  const { me, stream } = useSession();
  const state = useSyncExternalStore(stream.subscribeState, stream.getState);
  const { machines, lines, values, error, reload } = useMachines();
  const [imported, setImported] = useState<{ ok: boolean; text: string } | null>(null);
  useTick(5000);
  const engineer = can(me.role, "engineer");

  async function importFile(f: File | null) {
    if (!f) return;
    setImported(null);
    const form = new FormData();
    form.append("file", f, f.name);
    try {
      const r = await postForm<Schemas["ImportOut"]>("/api/v1/machines/import", form);
      setImported({ ok: true, text: `${f.name}: ${r.lines} lines; created ${r.created.length ? r.created.join(", ") : "none"}; updated ${r.updated.length ? r.updated.join(", ") : "none"}.` });
      reload();
    } catch (e) {
      setImported({ ok: false, text: `${f.name}: ${(e as Error).message}` });
    }
  }

  if (error && !machines) return <Alert color="red" title="Cannot load machines">{error}</Alert>;
  if (!machines) {
    return (
      <Center p="xl">
        <Loader aria-label="Loading machines" />
      </Center>
    );
  }
  const groups = byLine(machines);
  const empty = lines.filter((l) => l.machines === 0 && !groups.some(([name]) => name === l.name));
  const alerting = machines.filter((m) => healthLevel(m.health, m.open_alerts) === "alerting").length;
  const open = machines.reduce((n, m) => n + m.open_alerts, 0);
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Machines</Title>
        <Group gap="md">
          <Text size="sm" data-testid="machines-summary">
            {machines.length} machine{machines.length === 1 ? "" : "s"} · {alerting} alerting ·{" "}
            <Anchor href="#/alerts" inherit>
              {open} open alert{open === 1 ? "" : "s"}
            </Anchor>
          </Text>
          <Text size="sm" c={state === "open" ? "#237a35" : "red.9"} data-testid="machines-live-state">
            {state === "open" ? "● Live" : state === "connecting" ? "Connecting…" : "● Disconnected"}
          </Text>
          {engineer && (
            <FileButton onChange={importFile} accept=".yaml,.yml,.json,application/json,application/yaml">
              {(props) => (
                <Button variant="default" size="xs" {...props} data-testid="import-machines">
                  Import definitions…
                </Button>
              )}
            </FileButton>
          )}
        </Group>
      </Group>
      <Feedback msg={imported} onClose={() => setImported(null)} data-testid="import-result" />
      {machines.length === 0 && (
        <Alert color="gray" title="No machines yet" data-testid="machines-empty">
          {engineer
            ? "Import a YAML or JSON file of lines, machines and sensors (Import definitions), or create them with the API or `linewatch machines import FILE`."
            : "An engineer defines the line's machines and their sensors."}
        </Alert>
      )}
      {groups.map(([line, ms]) => (
        <section key={line} aria-label={`Line ${line}`} data-testid="line-group" data-line={line}>
          <Title order={3} size="h4" mb="xs">
            {line}
          </Title>
          <SimpleGrid cols={{ base: 1, sm: 2, lg: 3, xl: 4 }}>
            {ms.map((m) => (
              <MachineCard key={m.name} m={m} values={values[m.name]} />
            ))}
          </SimpleGrid>
        </section>
      ))}
      {empty.map((l) => (
        <section key={l.name} aria-label={`Line ${l.name}`}>
          <Title order={3} size="h4" mb="xs">
            {l.name}
          </Title>
          <Text size="sm" c="gray.7">
            No machines on this line yet.
          </Text>
        </section>
      ))}
    </Stack>
  );
}
