import { Alert, Anchor, Button, Card, Center, Group, Loader, Select, Stack, Table, Text, Title } from "@mantine/core";
import { useCallback, useEffect, useMemo, useState } from "react";
import { navigate } from "../../lib/router";
import { useSession } from "../../lib/session";
import {
  type LineModel,
  type Segment,
  type TwinEvent,
  type TwinEventItem,
  allEvents,
  describeSegment,
  fmtClock,
  fmtDuration,
  segments,
  stateStyle,
  timeInStates,
  twin,
} from "../../lib/twin";
import { StateLegend } from "./LineMap";
import { type Range, RangePicker, presetRange } from "./RangePicker";
import { StateTimeline } from "./StateTimeline";

const MAX_LISTED = 300;

/** Each machine's states over a range: the swimlane chart, time per state in a table, and every state change as a
 * list (the chart in text). Ranges ending now follow the line's live events. */
export function TimelineView({ line, model, machine }: { line: string; model: LineModel; machine: string | null }) {
  const { stream } = useSession();
  const [range, setRange] = useState<Range>(() => presetRange("8h", model));
  const [events, setEvents] = useState<TwinEventItem[] | null>(null);
  const [initial, setInitial] = useState<Map<string, { state: string | null; reason?: string | null; job?: string | null }>>(new Map());
  const [truncated, setTruncated] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [to, setTo] = useState(range.to);
  const names = useMemo(() => model.machines.map((m) => m.name), [model]);
  const shown = machine && names.includes(machine) ? [machine] : names;

  const load = useCallback(async () => {
    setEvents(null);
    setError(null);
    const from = new Date(range.from).toISOString();
    const until = new Date(range.to).toISOString();
    try {
      const [st, ev] = await Promise.all([
        twin.state(line, from),
        allEvents(line, { from, to: until, machine: machine ?? undefined }),
      ]);
      setInitial(new Map(st.machines.map((m) => [m.machine, { state: m.state, reason: m.reason, job: m.job }])));
      setEvents(ev.items);
      setTruncated(ev.truncated);
      setTo(range.to);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [line, range, machine]);
  useEffect(() => {
    load();
  }, [load]);

  // a range ending now grows with the live events
  useEffect(() => {
    if (range.preset === "custom") return;
    const onEvent = (ev: TwinEvent) => {
      if (ev.line !== line || (machine && ev.machine !== machine)) return;
      setEvents((list) => (list ? [...list, { id: -Date.now(), ts: ev.ts, machine: ev.machine, kind: ev.kind ?? "state", state: ev.state ?? null, reason: ev.reason ?? null, job: ev.job ?? null }] : list));
      setTo(Math.max(Date.now(), Date.parse(ev.ts) + 1));
    };
    stream.twinEvents.add(onEvent);
    return () => {
      stream.twinEvents.delete(onEvent);
    };
  }, [stream, line, machine, range.preset]);

  const segs = useMemo(() => (events ? segments(shown, events, range.from, to, initial) : null), [events, shown, range.from, to, initial]);
  const rows = useMemo(() => (segs ? shown.map((m) => [m, segs.get(m) ?? []] as [string, Segment[]]) : []), [segs, shown]);
  const changes = rows.flatMap(([, s]) => s).sort((a, b) => a.start - b.start);

  return (
    <Stack data-testid="timeline-view">
      <Group justify="space-between" align="flex-end">
        <RangePicker range={range} onChange={setRange} model={model} presets={["1h", "8h", "shift", "24h", "7d"]} />
        <Select
          label="Machine"
          data={[{ value: "", label: "All machines" }, ...names.map((n) => ({ value: n, label: n }))]}
          value={machine ?? ""}
          onChange={(v) => navigate(`/line/${encodeURIComponent(line)}/timeline${v ? `?machine=${encodeURIComponent(v)}` : ""}`)}
          allowDeselect={false}
          w={220}
          data-testid="timeline-machine"
        />
      </Group>
      <StateLegend />
      {error && (
        <Alert color="red" title="The state events could not be loaded">
          <Text size="sm" mb="xs">
            {error}
          </Text>
          <Button size="xs" onClick={load}>
            Try again
          </Button>
        </Alert>
      )}
      {!events && !error && (
        <Center p="xl">
          <Loader aria-label="Loading the state events" />
        </Center>
      )}
      {events && (
        <>
          <Text size="sm" data-testid="timeline-summary">
            {fmtClock(range.from)} to {fmtClock(to)} ({range.label}): {events.length} event{events.length === 1 ? "" : "s"}
            {machine ? ` of ${machine}` : ""}.
            {events.length === 0 ? " No state event in this range; the states shown are those at its start (if known)." : ""}
          </Text>
          {truncated && (
            <Alert color="yellow" data-testid="timeline-truncated">
              This range has more events than the chart loads at once; the newest are left out. Choose a shorter range or one machine.
            </Alert>
          )}
          <StateTimeline rows={rows} from={range.from} to={to} label={`State timeline of ${machine ?? `the ${shown.length} machines of ${line}`}, ${range.label}`} />
          <Card withBorder>
            <Title order={3} size="h5" mb="xs">
              Time per state
            </Title>
            <Table.ScrollContainer minWidth={640}>
              <Table data-testid="timeline-table" striped>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Machine</Table.Th>
                    {[...["running", "idle", "blocked", "starved", "down", "maintenance"], "unknown"].map((s) => (
                      <Table.Th key={s} ta="right">
                        {stateStyle(s).symbol} {stateStyle(s).label}
                      </Table.Th>
                    ))}
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {rows.map(([m, s]) => {
                    const t = new Map(timeInStates(s).map((x) => [x.state, x]));
                    return (
                      <Table.Tr key={m} data-testid="timeline-row" data-machine={m}>
                        <Table.Td>
                          <Anchor href={`#/line/${encodeURIComponent(line)}/timeline?machine=${encodeURIComponent(m)}`}>{m}</Anchor>
                        </Table.Td>
                        {[...["running", "idle", "blocked", "starved", "down", "maintenance"], "unknown"].map((st) => {
                          const x = t.get(st);
                          return (
                            <Table.Td key={st} ta="right">
                              {x ? `${(x.share * 100).toFixed(1)} % (${fmtDuration(x.ms / 1000)})` : "–"}
                            </Table.Td>
                          );
                        })}
                      </Table.Tr>
                    );
                  })}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          </Card>
          <details data-testid="timeline-list">
            <summary>
              <Text span size="sm" fw={600}>
                Every state in the range, in text ({changes.length})
              </Text>
            </summary>
            <ol>
              {changes.slice(0, MAX_LISTED).map((s) => (
                <li key={`${s.machine}-${s.start}`}>
                  <Text size="sm">{describeSegment(s)}</Text>
                </li>
              ))}
            </ol>
            {changes.length > MAX_LISTED && (
              <Text size="sm" c="dimmed">
                and {changes.length - MAX_LISTED} more; choose a shorter range or one machine.
              </Text>
            )}
          </details>
        </>
      )}
    </Stack>
  );
}
