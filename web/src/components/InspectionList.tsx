import { Group, Text } from "@mantine/core";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useRef } from "react";
import type { Inspection } from "../api/client";
import { fmtNum, fmtTime } from "../lib/format";
import { Thumb } from "./Thumb";
import { DuplicateBadge, VerdictBadge } from "./Verdict";

const ROW = 54;

/** A virtualised list: only the rows in view are in the DOM, however many there are. */
export function InspectionList({
  count,
  at,
  onOpen,
  selectedId,
  height = 480,
  label,
  compact = false,
}: {
  count: number;
  at: (i: number) => Inspection | undefined;
  onOpen: (x: Inspection) => void;
  selectedId?: number;
  height?: number | string;
  label: string;
  compact?: boolean; // a narrow column: number, verdict and score only
}) {
  const parent = useRef<HTMLDivElement>(null);
  const v = useVirtualizer({
    count,
    getScrollElement: () => parent.current,
    estimateSize: () => ROW,
    overscan: 4,
    getItemKey: (i) => at(i)?.id ?? i,
  });
  return (
    <div ref={parent} style={{ height, overflow: "auto" }} role="list" aria-label={label} tabIndex={0}>
      <div style={{ height: v.getTotalSize(), position: "relative" }}>
        {v.getVirtualItems().map((row) => {
          const x = at(row.index);
          if (!x) return null;
          return (
            <div
              key={row.key}
              role="listitem"
              className={`lw-row${x.id === selectedId ? " selected" : ""}`}
              style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW, transform: `translateY(${row.start}px)` }}
              onClick={() => onOpen(x)}
              onKeyDown={(e) => e.key === "Enter" && onOpen(x)}
              tabIndex={0}
              data-testid="inspection-row"
              data-id={x.id}
            >
              {/* a small JPEG from the service: a camera's full image would be megabytes per row */}
              <Thumb url={`/api/v1/inspections/${x.id}/thumbnail`} alt={`inspection ${x.id}`} />
              {compact ? (
                <div style={{ minWidth: 0, flex: 1 }}>
                  <Group gap={6} wrap="nowrap">
                    <VerdictBadge verdict={x.verdict} review={x.review_verdict} />
                    <Text size="sm" fw={600}>
                      #{x.id}
                    </Text>
                    <DuplicateBadge of={x.duplicate_of} kind={x.duplicate_kind} />
                  </Group>
                  <Text size="xs" c="gray.7" ff="monospace" truncate>
                    score {fmtNum(x.normalized_score, 3)} · {fmtTime(x.created_at)}
                  </Text>
                </div>
              ) : (
                <>
                  <VerdictBadge verdict={x.verdict} review={x.review_verdict} />
                  <Text size="sm" fw={600} w={64}>
                    #{x.id}
                  </Text>
                  <Text size="sm" truncate style={{ flex: 1, minWidth: 0 }}>
                    {x.station}
                    {x.filename ? ` · ${x.filename}` : ""}
                  </Text>
                  <DuplicateBadge of={x.duplicate_of} kind={x.duplicate_kind} />
                  <Text size="sm" ff="monospace" w={56} ta="right" title="normalised score (0.5 = threshold)">
                    {fmtNum(x.normalized_score, 3)}
                  </Text>
                  <Text size="sm" c="gray.7" w={72} ta="right" style={{ whiteSpace: "nowrap" }}>
                    {fmtTime(x.created_at)}
                  </Text>
                </>
              )}
            </div>
          );
        })}
      </div>
    </div>
  );
}
