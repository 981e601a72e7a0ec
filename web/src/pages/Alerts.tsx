import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Center,
  Grid,
  Group,
  Loader,
  Paper,
  SegmentedControl,
  Select,
  Stack,
  Table,
  Text,
  Textarea,
  Title,
} from "@mantine/core";
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { api, call, can } from "../api/client";
import { fmtDateTime, fmtNum } from "../lib/format";
import {
  type AlertDetail,
  type AlertEvent,
  type MachineAlert,
  alertMatches,
  drivers,
  duration,
  sortAlerts,
  upsertAlert,
} from "../lib/machines";
import { navigate, useRoute } from "../lib/router";
import { useSession } from "../lib/session";

const PAGE = 100;

function StatusBadges({ a }: { a: MachineAlert }) {
  return (
    <Group gap={4} wrap="nowrap">
      <Badge color={a.status === "open" ? "red.9" : "gray.7"} variant="filled" miw={64} style={{ overflow: "visible" }}>
        {a.status}
      </Badge>
      {!a.acknowledged && (
        <Badge color="#a34100" variant="outline" style={{ overflow: "visible" }}>
          unacknowledged
        </Badge>
      )}
    </Group>
  );
}

/** One alert: what drove it, its acknowledgement and comments; operators acknowledge (with an optional comment) and
 * comment. */
export function AlertPanel({ id, onClose }: { id: number; onClose: () => void }) {
  const { me, stream } = useSession();
  const operator = can(me.role, "operator");
  const [alert, setAlert] = useState<AlertDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [ackComment, setAckComment] = useState("");
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setAlert(await call(api.GET("/api/v1/alerts/{alert_id}", { params: { path: { alert_id: id } } })));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [id]);
  useEffect(() => {
    setAlert(null);
    setActionError(null);
    load();
  }, [load]);
  useEffect(() => {
    const onAlert = (e: AlertEvent) => {
      if (e.alert.id === id) load();
    };
    stream.alerts.add(onAlert);
    return () => {
      stream.alerts.delete(onAlert);
    };
  }, [stream, id, load]);

  async function act(what: () => Promise<unknown>, then: () => void) {
    setBusy(true);
    setActionError(null);
    try {
      await what();
      then();
      await load();
    } catch (e) {
      setActionError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  if (error) return <Alert color="red">{error}</Alert>;
  if (!alert) return <Loader size="sm" aria-label="Loading the alert" />;
  return (
    <Card withBorder data-testid="alert-detail" data-id={alert.id}>
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4">
          Alert #{alert.id} on <Anchor href={`#/machines/${encodeURIComponent(alert.machine)}`} inherit>{alert.machine}</Anchor>
        </Title>
        <Button size="xs" variant="subtle" onClick={onClose}>
          Close
        </Button>
      </Group>
      <StatusBadges a={alert} />
      <Table mt="xs" variant="vertical" withRowBorders={false} fz="sm">
        <Table.Tbody>
          <Table.Tr>
            <Table.Th w={150}>Opened</Table.Th>
            <Table.Td>{fmtDateTime(alert.opened_at)}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th>{alert.status === "open" ? "Last anomalous" : "Closed"}</Table.Th>
            <Table.Td>
              {fmtDateTime(alert.closed_at ?? alert.last_at)} ({duration(alert.opened_at, alert.closed_at ?? alert.last_at)})
            </Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th>Anomalous readings</Table.Th>
            <Table.Td data-testid="alert-readings">{alert.anomalous_readings}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th>Peak score</Table.Th>
            <Table.Td>{alert.peak_score > 0 ? fmtNum(alert.peak_score, 2) : "– (outside the expected range)"}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th>Model</Table.Th>
            <Table.Td>{alert.model_id != null ? `#${alert.model_id}` : "none"}</Table.Td>
          </Table.Tr>
        </Table.Tbody>
      </Table>
      <Text fw={600} size="sm" mt="xs">
        What drove it
      </Text>
      <Table fz="sm" data-testid="alert-sensors">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Sensor</Table.Th>
            <Table.Th>Score</Table.Th>
            <Table.Th>Value</Table.Th>
            <Table.Th>Reason</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {alert.sensors.map((d, i) => (
            <Table.Tr key={i}>
              <Table.Td>{String(d.sensor ?? "?")}</Table.Td>
              <Table.Td>{typeof d.score === "number" ? fmtNum(d.score, 2) : "–"}</Table.Td>
              <Table.Td>{typeof d.value === "number" ? d.value : "–"}</Table.Td>
              <Table.Td>{typeof d.reason === "string" ? d.reason : "model score"}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>

      <Text fw={600} size="sm" mt="md">
        Acknowledgement
      </Text>
      {alert.acknowledged ? (
        <Text size="sm" data-testid="acknowledged">
          Acknowledged by {alert.acknowledged_by ?? "?"} at {alert.acknowledged_at ? fmtDateTime(alert.acknowledged_at) : "?"}
        </Text>
      ) : operator ? (
        <Stack gap={6}>
          <Textarea
            label="Comment (optional)"
            value={ackComment}
            onChange={(e) => setAckComment(e.currentTarget.value)}
            autosize
            minRows={2}
            maxLength={5000}
            data-testid="ack-comment"
          />
          <Group>
            <Button
              color="#a34100"
              loading={busy}
              data-testid="acknowledge"
              onClick={() =>
                act(
                  () =>
                    call(
                      api.POST("/api/v1/alerts/{alert_id}/acknowledge", {
                        params: { path: { alert_id: alert.id } },
                        body: ackComment.trim() ? { comment: ackComment.trim() } : {},
                      }),
                    ),
                  () => setAckComment(""),
                )
              }
            >
              Acknowledge
            </Button>
          </Group>
        </Stack>
      ) : (
        <Text size="sm" c="gray.7" data-testid="ack-forbidden">
          Not acknowledged yet. Acknowledging needs the operator role; you are signed in as {me.role}.
        </Text>
      )}
      {actionError && (
        <Alert color="red" mt="xs" role="alert">
          {actionError}
        </Alert>
      )}

      <Text fw={600} size="sm" mt="md">
        Comments ({alert.comments.length})
      </Text>
      <Stack gap={6} data-testid="comments" aria-live="polite">
        {alert.comments.map((c) => (
          <Paper key={c.id} withBorder p="xs" data-testid="comment">
            <Text size="xs" c="gray.7">
              {c.user ?? "someone"} · {fmtDateTime(c.created_at)}
            </Text>
            <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
              {c.text}
            </Text>
          </Paper>
        ))}
        {alert.comments.length === 0 && (
          <Text size="sm" c="gray.7">
            No comment yet.
          </Text>
        )}
      </Stack>
      {operator && (
        <Stack gap={6} mt="xs">
          <Textarea
            label="Add a comment"
            value={comment}
            onChange={(e) => setComment(e.currentTarget.value)}
            autosize
            minRows={2}
            maxLength={5000}
            data-testid="comment-text"
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && comment.trim()) {
                e.preventDefault();
                act(() => call(api.POST("/api/v1/alerts/{alert_id}/comments", { params: { path: { alert_id: alert.id } }, body: { text: comment.trim() } })), () => setComment(""));
              }
            }}
          />
          <Group>
            <Button
              variant="default"
              disabled={!comment.trim()}
              loading={busy}
              data-testid="add-comment"
              onClick={() =>
                act(() => call(api.POST("/api/v1/alerts/{alert_id}/comments", { params: { path: { alert_id: alert.id } }, body: { text: comment.trim() } })), () => setComment(""))
              }
            >
              Comment
            </Button>
            <Text size="xs" c="gray.7">
              Ctrl+Enter sends
            </Text>
          </Group>
        </Stack>
      )}
    </Card>
  );
}

export default function AlertsPage() {
  const { stream } = useSession();
  const route = useRoute();
  const state = useSyncExternalStore(stream.subscribeState, stream.getState);
  const machine = route.query.get("machine");
  const selected = route.query.get("id") ? Number(route.query.get("id")) : null;
  const [status, setStatus] = useState("all");
  const [acknowledged, setAcknowledged] = useState("all");
  const [machines, setMachines] = useState<string[]>([]);
  const [alerts, setAlerts] = useState<MachineAlert[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const filters = useMemo(() => ({ machine, status, acknowledged }), [machine, status, acknowledged]);

  const go = useCallback(
    (patch: { machine?: string | null; id?: number | null }) => {
      const q = new URLSearchParams(route.query);
      for (const [k, v] of Object.entries(patch)) {
        if (v === null || v === undefined) q.delete(k);
        else q.set(k, String(v));
      }
      const qs = q.toString();
      navigate(`/alerts${qs ? `?${qs}` : ""}`, true);
    },
    [route.query],
  );

  const load = useCallback(
    async (before?: number) => {
      try {
        const got = await call(
          api.GET("/api/v1/alerts", {
            params: {
              query: {
                limit: PAGE,
                ...(filters.machine ? { machine: filters.machine } : {}),
                ...(filters.status !== "all" ? { status: filters.status } : {}),
                ...(filters.acknowledged !== "all" ? { acknowledged: filters.acknowledged === "yes" } : {}),
                ...(before ? { before } : {}),
              },
            },
          }),
        );
        setAlerts((cur) => (before && cur ? [...cur, ...got.filter((a) => !cur.some((x) => x.id === a.id))] : got));
        setMore(got.length === PAGE);
        setError(null);
      } catch (e) {
        setError((e as Error).message);
      }
    },
    [filters],
  );
  useEffect(() => {
    setAlerts(null);
    load();
  }, [load]);
  useEffect(() => {
    if (state === "open" && stream.wasLost) load();
  }, [state, stream, load]);
  useEffect(() => {
    call(api.GET("/api/v1/machines")).then((ms) => setMachines(ms.map((m) => m.name)), () => {});
  }, []);

  // live: an alert changed or appeared; kept when it matches the filters, dropped when it no longer does
  useEffect(() => {
    const onAlert = (e: AlertEvent) => {
      setAlerts((cur) => {
        if (!cur) return cur;
        if (alertMatches(e.alert, filters)) return upsertAlert(cur, e.alert);
        return cur.filter((a) => a.id !== e.alert.id);
      });
    };
    stream.alerts.add(onAlert);
    return () => {
      stream.alerts.delete(onAlert);
    };
  }, [stream, filters]);

  const sorted = useMemo(() => (alerts ? sortAlerts(alerts) : null), [alerts]);
  const waiting = alerts?.filter((a) => a.status === "open" && !a.acknowledged).length ?? 0;

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Alerts</Title>
        <Text size="sm" data-testid="alerts-summary">
          {sorted ? `${waiting} open and not acknowledged · ${sorted.length} shown` : "…"}
        </Text>
      </Group>
      <Group align="flex-end" gap="md">
        <Select
          label="Machine"
          placeholder="All machines"
          data={machines}
          value={machine}
          onChange={(v) => go({ machine: v, id: null })}
          clearable
          searchable
          w={200}
          data-testid="filter-machine"
        />
        <div>
          <Text size="sm" fw={500} id="alerts-status-label">
            Status
          </Text>
          <SegmentedControl
            aria-labelledby="alerts-status-label"
            value={status}
            onChange={setStatus}
            data={[
              { value: "all", label: "All" },
              { value: "open", label: "Open" },
              { value: "closed", label: "Closed" },
            ]}
            data-testid="filter-status"
          />
        </div>
        <div>
          <Text size="sm" fw={500} id="alerts-ack-label">
            Acknowledged
          </Text>
          <SegmentedControl
            aria-labelledby="alerts-ack-label"
            value={acknowledged}
            onChange={setAcknowledged}
            data={[
              { value: "all", label: "All" },
              { value: "no", label: "Not yet" },
              { value: "yes", label: "Yes" },
            ]}
            data-testid="filter-ack"
          />
        </div>
      </Group>
      {error && <Alert color="red" title="Cannot load alerts">{error}</Alert>}
      <Grid>
        <Grid.Col span={{ base: 12, lg: selected ? 7 : 12 }}>
          {!sorted ? (
            !error && (
              <Center p="xl">
                <Loader aria-label="Loading alerts" />
              </Center>
            )
          ) : sorted.length === 0 ? (
            <Alert color="gray" title="No alerts" data-testid="alerts-empty">
              No alert matches these filters. Alerts open when a machine's sensor model scores its readings as anomalous, or when a reading falls outside its
              sensor's expected range.
            </Alert>
          ) : (
            <Card withBorder padding={0}>
              <Table.ScrollContainer minWidth={640}>
                <Table highlightOnHover data-testid="alerts-table">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Alert</Table.Th>
                      <Table.Th>Machine</Table.Th>
                      <Table.Th>Status</Table.Th>
                      <Table.Th>Opened</Table.Th>
                      <Table.Th>Lasted</Table.Th>
                      <Table.Th>Sensors</Table.Th>
                      <Table.Th>Acknowledged by</Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {sorted.map((a) => (
                      <Table.Tr
                        key={a.id}
                        data-testid="alert-row"
                        data-id={a.id}
                        data-status={a.status}
                        data-acknowledged={a.acknowledged}
                        bg={a.id === selected ? "var(--mantine-color-blue-0)" : undefined}
                        onClick={() => go({ id: a.id })}
                        style={{ cursor: "pointer" }}
                      >
                        <Table.Td>
                          <button type="button" className="lw-link-button" aria-pressed={a.id === selected} onClick={() => go({ id: a.id })}>
                            #{a.id}
                          </button>
                        </Table.Td>
                        <Table.Td>
                          <Anchor href={`#/machines/${encodeURIComponent(a.machine)}`} onClick={(e) => e.stopPropagation()}>
                            {a.machine}
                          </Anchor>
                        </Table.Td>
                        <Table.Td>
                          <StatusBadges a={a} />
                        </Table.Td>
                        <Table.Td>{fmtDateTime(a.opened_at)}</Table.Td>
                        <Table.Td>{duration(a.opened_at, a.closed_at ?? a.last_at)}</Table.Td>
                        <Table.Td>{drivers(a)}</Table.Td>
                        <Table.Td>{a.acknowledged_by ?? "–"}</Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </Table.ScrollContainer>
              {more && (
                <Group justify="center" p="xs">
                  <Button variant="default" size="xs" onClick={() => load(Math.min(...alerts!.map((a) => a.id)))}>
                    Older alerts
                  </Button>
                </Group>
              )}
            </Card>
          )}
        </Grid.Col>
        {selected && (
          <Grid.Col span={{ base: 12, lg: 5 }}>
            <AlertPanel id={selected} onClose={() => go({ id: null })} />
          </Grid.Col>
        )}
      </Grid>
    </Stack>
  );
}
