import { Alert, Anchor, Badge, Button, Card, Center, Group, Loader, Stack, Table, Text, Title } from "@mantine/core";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { fmtTime } from "../../lib/format";
import { useSession } from "../../lib/session";
import { type LineModel, type LineState, type TwinEvent, applyEvent, flowLayout, fmtDuration, stateStyle, twin } from "../../lib/twin";
import { LineMap, StateLegend } from "./LineMap";

const REFRESH_MS = 15_000; // the whole state again (buffers, health), and the "for 5 min" texts
const AFTER_EVENT_MS = 1_500; // after live events, the buffers' levels again (an event carries the machine only)

/** The line map, live: the state from the service, each twin_event applied at once, the buffers refetched shortly
 * after events and every 15 s. A table says the same in text. */
export function MapView({ line, model }: { line: string; model: LineModel }) {
  const { stream } = useSession();
  const layout = useMemo(() => flowLayout(model), [model]);
  const [state, setState] = useState<LineState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const [live, setLive] = useState(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const load = useCallback(async () => {
    try {
      setState(await twin.state(line));
      setError(null);
      setNow(Date.now());
    } catch (e) {
      setError((e as Error).message);
    }
  }, [line]);

  useEffect(() => {
    load();
    const t = setInterval(load, REFRESH_MS);
    return () => clearInterval(t);
  }, [load]);

  useEffect(() => {
    const onEvent = (ev: TwinEvent) => {
      if (ev.line !== line) return;
      setState((s) => (s ? applyEvent(s, ev) : s));
      setNow(Date.now());
      setLive((n) => n + 1);
      if (timer.current === null) {
        timer.current = setTimeout(() => {
          timer.current = null;
          load();
        }, AFTER_EVENT_MS);
      }
    };
    stream.twinEvents.add(onEvent);
    return () => {
      stream.twinEvents.delete(onEvent);
      if (timer.current) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [stream, line, load]);

  const href = (m: string) => `#/line/${encodeURIComponent(line)}/timeline?machine=${encodeURIComponent(m)}`;
  const byName = new Map((state?.machines ?? []).map((m) => [m.machine, m]));
  const counts = new Map<string, number>();
  for (const m of state?.machines ?? []) counts.set(m.state ?? "unknown", (counts.get(m.state ?? "unknown") ?? 0) + 1);

  return (
    <Stack data-testid="map-view">
      {error && (
        <Alert color="red" title="The line's state could not be loaded">
          <Text size="sm" mb="xs">
            {error}
          </Text>
          <Button size="xs" onClick={load}>
            Try again
          </Button>
        </Alert>
      )}
      <Group justify="space-between">
        <StateLegend />
        <Text size="sm" c="dimmed" data-testid="map-as-of" aria-live="off">
          {state ? `State as of ${fmtTime(state.at)}` : ""}
          {live > 0 ? ` · ${live} live event${live > 1 ? "s" : ""}` : ""}
        </Text>
      </Group>
      {!state && !error ? (
        <Center p="xl">
          <Loader aria-label="Loading the line's state" />
        </Center>
      ) : (
        <LineMap layout={layout} model={model} state={state} machineHref={href} now={now} />
      )}
      {state && (
        <Text size="sm" data-testid="map-summary">
          {model.machines.length} machines:{" "}
          {[...counts.entries()].map(([s, n]) => `${n} ${stateStyle(s).label}`).join(", ") || "no state reported yet"}. Select a machine for its state
          timeline.
        </Text>
      )}
      <Card withBorder>
        <Title order={3} size="h5" mb="xs">
          Machines
        </Title>
        <Table.ScrollContainer minWidth={760}>
          <Table data-testid="map-table" striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Machine</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>For</Table.Th>
                <Table.Th>Reason / job</Table.Th>
                <Table.Th ta="right">Good</Table.Th>
                <Table.Th ta="right">Defective</Table.Th>
                <Table.Th>Health</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {model.machines.map((mm) => {
                const m = byName.get(mm.name);
                const st = stateStyle(m?.state);
                const h = m?.health;
                return (
                  <Table.Tr key={mm.name} data-testid="map-row" data-machine={mm.name}>
                    <Table.Td>
                      <Anchor href={href(mm.name)}>{mm.name}</Anchor>
                    </Table.Td>
                    <Table.Td>
                      <Badge color={st.color} variant="filled" leftSection={<span aria-hidden="true">{st.symbol}</span>}>
                        {st.label}
                      </Badge>
                    </Table.Td>
                    <Table.Td>{m?.since ? fmtDuration((now - Date.parse(m.since)) / 1000) : "–"}</Table.Td>
                    <Table.Td>{[m?.reason, m?.job ? `job ${m.job}` : null].filter(Boolean).join(" · ") || "–"}</Table.Td>
                    <Table.Td ta="right">{m?.good ?? 0}</Table.Td>
                    <Table.Td ta="right">{m?.defective ?? 0}</Table.Td>
                    <Table.Td>
                      {(h?.open_alerts ?? 0) > 0 ? (
                        <Anchor href={`#/alerts?machine=${encodeURIComponent(mm.name)}`} c="red.9" fw={700}>
                          {h!.open_alerts} open alert{h!.open_alerts! > 1 ? "s" : ""}
                        </Anchor>
                      ) : (
                        "no open alert"
                      )}
                      {h?.rul_low != null ? ` · RUL ≥ ${Math.round(h.rul_low)} cycles` : h?.rul != null ? ` · RUL ${Math.round(h.rul)} cycles` : ""}
                      {h?.failure_probability != null ? ` · failure risk ${Math.round(h.failure_probability * 100)} %` : ""}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        {(state?.buffers.length ?? 0) > 0 && (
          <Text size="sm" mt="xs" data-testid="map-buffers">
            Buffers: {state!.buffers.map((b) => `${b.buffer} ${b.level ?? "–"}${b.capacity != null ? ` / ${b.capacity}` : ""}`).join(", ")}.
          </Text>
        )}
      </Card>
    </Stack>
  );
}
