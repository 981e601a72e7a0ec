import { Alert, Button, Card, Center, Grid, Group, Kbd, Loader, Stack, Table, Text, Title } from "@mantine/core";
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, call, type Inspection } from "../api/client";
import { InspectionList } from "../components/InspectionList";
import { InspectionView } from "../components/InspectionView";
import { uncertainty } from "../lib/format";
import { useSession } from "../lib/session";

const LIMIT = 500;

/** Unreviewed inspections, the most uncertain (normalised score nearest the 0.5 threshold) first. */
export function reviewOrder(items: Inspection[]): Inspection[] {
  return [...items].sort((a, b) => uncertainty(a.normalized_score) - uncertainty(b.normalized_score) || b.id - a.id);
}

export default function ReviewPage() {
  const { station } = useSession();
  const [items, setItems] = useState<Inspection[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  const [reviewedCount, setReviewedCount] = useState(0);

  const load = useCallback(async () => {
    setError(null);
    try {
      const page = await call(
        api.GET("/api/v1/inspections", {
          params: { query: { reviewed: false, limit: LIMIT, ...(station ? { station } : {}) } },
        }),
      );
      const ordered = reviewOrder(page.items);
      setItems(ordered);
      setSelected((s) => (s !== null && ordered.some((x) => x.id === s) ? s : (ordered[0]?.id ?? null)));
    } catch (e) {
      setError((e as Error).message);
    }
  }, [station]);

  useEffect(() => {
    load();
  }, [load]);

  const index = useMemo(() => (items && selected !== null ? items.findIndex((x) => x.id === selected) : -1), [items, selected]);
  const current = items && index >= 0 ? items[index] : null;

  const move = useCallback(
    (step: number) => {
      if (!items || !items.length) return;
      const i = Math.max(0, Math.min(items.length - 1, (index < 0 ? 0 : index) + step));
      setSelected(items[i].id);
    },
    [items, index],
  );

  useEffect(() => {
    function onKey(e: KeyboardEvent) {
      const t = e.target as HTMLElement;
      if (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "j" || e.key === "ArrowDown") {
        e.preventDefault();
        move(1);
      } else if (e.key === "k" || e.key === "ArrowUp") {
        e.preventDefault();
        move(-1);
      }
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [move]);

  function reviewed(x: Inspection) {
    setReviewedCount((n) => n + 1);
    setItems((prev) => {
      if (!prev) return prev;
      const i = prev.findIndex((y) => y.id === x.id);
      const rest = prev.filter((y) => y.id !== x.id);
      // on to the next one: the one that took its place in the order
      setSelected(rest.length ? rest[Math.min(i, rest.length - 1)].id : null);
      return rest;
    });
    (document.activeElement as HTMLElement | null)?.blur?.();
  }

  if (error) {
    return (
      <Alert color="red" title="Cannot load the review queue">
        {error}
        <div>
          <Button mt="sm" size="xs" onClick={load}>
            Try again
          </Button>
        </div>
      </Alert>
    );
  }
  if (!items) {
    return (
      <Center p="xl">
        <Loader aria-label="Loading review queue" />
      </Center>
    );
  }
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Review queue{station ? ` · ${station}` : ""}</Title>
        <Group gap="xs">
          <Text size="sm" c="gray.7" data-testid="queue-count">
            {items.length}
            {items.length === LIMIT ? "+" : ""} to review · {reviewedCount} reviewed now
          </Text>
          <Button size="xs" variant="default" onClick={load}>
            Refresh
          </Button>
        </Group>
      </Group>
      {items.length === 0 ? (
        <Alert color="green" title="Nothing to review" data-testid="queue-empty">
          Every inspection{station ? ` of ${station}` : ""} has been reviewed. New ones appear here after a refresh.
        </Alert>
      ) : (
        <Grid>
          <Grid.Col span={{ base: 12, lg: 3 }} order={{ base: 2, lg: 1 }}>
            <Card withBorder padding={0}>
              <Text fw={600} px="sm" py={6}>
                Most uncertain first
              </Text>
              <InspectionList
                label="Inspections to review"
                count={items.length}
                at={(i) => items[i]}
                selectedId={selected ?? undefined}
                onOpen={(x) => setSelected(x.id)}
                height="min(64vh, 620px)"
                compact
              />
            </Card>
          </Grid.Col>
          {/* on a tablet the part and the decision come first, the queue below */}
          <Grid.Col span={{ base: 12, lg: 9 }} order={{ base: 1, lg: 2 }}>
            {current && <InspectionView key={current.id} x={current} onReviewed={reviewed} reviewFirst />}
          </Grid.Col>
        </Grid>
      )}
      <Card withBorder>
        <Text fw={600} size="sm" mb={4}>
          Keyboard
        </Text>
        <Table className="lw-kbd-help" withRowBorders={false} verticalSpacing={0}>
          <Table.Tbody>
            <Table.Tr>
              <Table.Td><Kbd>C</Kbd> confirm the verdict · <Kbd>O</Kbd> overturn it · <Kbd>A</Kbd> accept the suggested defect type (all save and move on)</Table.Td>
              <Table.Td><Kbd>J</Kbd>/<Kbd>K</Kbd> or arrows: next / previous</Table.Td>
            </Table.Tr>
            <Table.Tr>
              <Table.Td><Kbd>G</Kbd> good · <Kbd>D</Kbd> defective · <Kbd>1</Kbd>–<Kbd>7</Kbd> defect type · <Kbd>N</Kbd> note</Table.Td>
              <Table.Td><Kbd>Ctrl</Kbd>+<Kbd>Enter</Kbd> save · <Kbd>H</Kbd> heatmap · <Kbd>B</Kbd> boxes · <Kbd>[</Kbd> <Kbd>]</Kbd> opacity</Table.Td>
            </Table.Tr>
          </Table.Tbody>
        </Table>
      </Card>
    </Stack>
  );
}
