import { Alert, Button, Card, Center, Group, Loader, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, call, type Inspection } from "../api/client";
import { DuplicateBadge, VerdictBadge } from "../components/Verdict";
import { download, toCsv } from "../lib/csv";
import { fmtDateTime, fmtNum } from "../lib/format";
import { navigate, useRoute } from "../lib/router";
import { useSession } from "../lib/session";

const PAGE = 50;
const MAX_EXPORT = 20_000;

interface Filters {
  verdict: string | null;
  reviewed: string | null;
  since: string; // datetime-local value, local time
  until: string;
}

const NO_FILTERS: Filters = { verdict: null, reviewed: null, since: "", until: "" };

/** The filters kept in the page's address (#/history?verdict=…&reviewed=…&since=…&until=…): a link or a reload shows
 * the same rows. */
export function filtersFrom(q: URLSearchParams): Filters {
  const pick = (k: string, allowed: string[]) => (allowed.includes(q.get(k) ?? "") ? q.get(k) : null);
  return {
    verdict: pick("verdict", ["good", "anomalous"]),
    reviewed: pick("reviewed", ["yes", "no"]),
    since: q.get("since") ?? "",
    until: q.get("until") ?? "",
  };
}

export function filtersQuery(f: Filters): string {
  const q = new URLSearchParams();
  if (f.verdict) q.set("verdict", f.verdict);
  if (f.reviewed) q.set("reviewed", f.reviewed);
  if (f.since) q.set("since", f.since);
  if (f.until) q.set("until", f.until);
  return q.toString();
}

function query(station: string | null, f: Filters) {
  return {
    ...(station ? { station } : {}),
    ...(f.verdict ? { verdict: f.verdict as Inspection["verdict"] } : {}),
    ...(f.reviewed ? { reviewed: f.reviewed === "yes" } : {}),
    ...(f.since ? { since: new Date(f.since).toISOString() } : {}),
    ...(f.until ? { until: new Date(f.until).toISOString() } : {}),
  };
}

export default function HistoryPage() {
  const { station, stations, setStation } = useSession();
  const route = useRoute();
  const qs = route.query.toString();
  const filters = useMemo(() => filtersFrom(new URLSearchParams(qs)), [qs]);
  const active = filtersQuery(filters) !== "";
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]); // cursor of each page seen
  const [page, setPage] = useState<{ items: Inspection[]; next_cursor: number | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [exporting, setExporting] = useState<string | null>(null);
  const pageNo = cursors.length - 1;

  const load = useCallback(async () => {
    setError(null);
    setPage(null);
    try {
      const cursor = cursors[cursors.length - 1];
      setPage(
        await call(
          api.GET("/api/v1/inspections", {
            params: { query: { ...query(station, filters), limit: PAGE, ...(cursor ? { cursor } : {}) } },
          }),
        ),
      );
    } catch (e) {
      setError((e as Error).message);
    }
  }, [cursors, station, filters]);

  useEffect(() => {
    load();
  }, [load]);

  function apply(f: Filters) {
    const q = filtersQuery(f);
    navigate(`/history${q ? `?${q}` : ""}`, true);
    setCursors([undefined]);
  }

  function set<K extends keyof Filters>(k: K, v: Filters[K]) {
    apply({ ...filters, [k]: v });
  }

  async function exportCsv() {
    const all: Inspection[] = [];
    let cursor: number | undefined;
    try {
      for (;;) {
        setExporting(`Exporting… ${all.length} rows`);
        const p = await call(
          api.GET("/api/v1/inspections", {
            params: { query: { ...query(station, filters), limit: 500, ...(cursor ? { cursor } : {}) } },
          }),
        );
        all.push(...p.items);
        if (!p.next_cursor || all.length >= MAX_EXPORT) break;
        cursor = p.next_cursor;
      }
      download(`linewatch-inspections-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.csv`, toCsv(all));
      setExporting(null);
    } catch (e) {
      setExporting(null);
      setError(`Export failed: ${(e as Error).message}`);
    }
  }

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>History</Title>
        <Button onClick={exportCsv} loading={!!exporting} variant="default" data-testid="export-csv">
          Export CSV
        </Button>
      </Group>
      <Card withBorder>
        <Group align="end" gap="sm">
          <Select
            label="Station"
            placeholder="All stations"
            data={stations.map((s) => s.name)}
            value={station}
            onChange={(v) => {
              setStation(v);
              setCursors([undefined]);
            }}
            clearable
            w={160}
          />
          <Select
            label="Model verdict"
            placeholder="Any"
            data={[
              { value: "good", label: "Pass" },
              { value: "anomalous", label: "Defect" },
            ]}
            value={filters.verdict}
            onChange={(v) => set("verdict", v)}
            clearable
            w={120}
            data-testid="filter-verdict"
          />
          <Select
            label="Reviewed"
            placeholder="Any"
            data={[
              { value: "yes", label: "Reviewed" },
              { value: "no", label: "Not reviewed" },
            ]}
            value={filters.reviewed}
            onChange={(v) => set("reviewed", v)}
            clearable
            w={150}
          />
          <TextInput label="From" type="datetime-local" value={filters.since} onChange={(e) => set("since", e.currentTarget.value)} w={210} />
          <TextInput label="Until" type="datetime-local" value={filters.until} onChange={(e) => set("until", e.currentTarget.value)} w={210} />
          <Button variant="default" onClick={() => apply(NO_FILTERS)} disabled={!active} data-testid="clear-filters">
            Clear filters
          </Button>
        </Group>
        {exporting && (
          <Text size="sm" mt="xs">
            {exporting}
          </Text>
        )}
      </Card>
      {error && (
        <Alert color="red" title="Cannot load inspections">
          {error}
        </Alert>
      )}
      {!page && !error && (
        <Center p="xl">
          <Loader aria-label="Loading history" />
        </Center>
      )}
      {page && page.items.length === 0 && (
        <Alert color="gray" title="No inspections match" data-testid="history-empty">
          Nothing matches these filters{pageNo ? " on this page" : ""}. Clear a filter or widen the dates.
        </Alert>
      )}
      {page && page.items.length > 0 && (
        <Card withBorder padding={0}>
          <Table.ScrollContainer minWidth={520}>
            <Table highlightOnHover striped data-testid="history-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>#</Table.Th>
                  <Table.Th>Time</Table.Th>
                  <Table.Th>Station</Table.Th>
                  <Table.Th>Verdict</Table.Th>
                  <Table.Th>Score</Table.Th>
                  <Table.Th visibleFrom="lg">Regions</Table.Th>
                  <Table.Th>Review</Table.Th>
                  <Table.Th visibleFrom="lg">File</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {page.items.map((x) => (
                  <Table.Tr key={x.id} style={{ cursor: "pointer" }} onClick={() => navigate(`/inspections/${x.id}`)}>
                    <Table.Td>
                      <a href={`#/inspections/${x.id}`}>{x.id}</a>
                    </Table.Td>
                    <Table.Td style={{ whiteSpace: "nowrap" }}>{fmtDateTime(x.created_at)}</Table.Td>
                    <Table.Td>{x.station}</Table.Td>
                    <Table.Td>
                      <Group gap={4} wrap="wrap">
                        <VerdictBadge verdict={x.verdict} review={x.review_verdict} />
                        <DuplicateBadge of={x.duplicate_of} kind={x.duplicate_kind} />
                      </Group>
                    </Table.Td>
                    <Table.Td ff="monospace">{fmtNum(x.normalized_score)}</Table.Td>
                    <Table.Td visibleFrom="lg">{x.regions.length}</Table.Td>
                    <Table.Td>
                      {x.review ? (
                        <Text size="sm" data-testid="history-review">
                          {x.review.reviewer ?? "–"}
                          {x.defect_type ? ` · ${x.defect_type}` : ""}
                        </Text>
                      ) : (
                        <Text size="sm" c="gray.7">
                          {x.reviewed ? "yes" : "no"}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td visibleFrom="lg" maw={260} style={{ overflowWrap: "anywhere" }}>
                      {x.filename ?? "–"}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </Card>
      )}
      <Group justify="center">
        <Button variant="default" disabled={pageNo === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
          ← Newer
        </Button>
        <Text size="sm">Page {pageNo + 1}</Text>
        <Button
          variant="default"
          disabled={!page?.next_cursor}
          onClick={() => page?.next_cursor && setCursors((c) => [...c, page.next_cursor!])}
          data-testid="next-page"
        >
          Older →
        </Button>
      </Group>
    </Stack>
  );
}
