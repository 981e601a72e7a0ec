import { Badge } from "@mantine/core";
import type { Verdict } from "../api/client";

export function VerdictBadge({ verdict, size = "sm" }: { verdict: Verdict; size?: "xs" | "sm" | "md" | "lg" }) {
  return (
    <Badge color={verdict === "anomalous" ? "red.9" : "#237a35"} size={size} variant="filled" miw={62}>
      {verdict === "anomalous" ? "Defect" : "Pass"}
    </Badge>
  );
}

/** A repeated upload of an earlier image (the service leaves it out of line counts). */
export function DuplicateBadge({ of, kind, size = "xs" }: { of?: number | null; kind?: "exact" | "near" | null; size?: "xs" | "sm" | "md" }) {
  if (of == null) return null;
  return (
    <Badge
      size={size}
      variant="outline"
      color="gray.8"
      title={`${kind ?? "near"} repeat of inspection #${of}`}
      data-testid="duplicate-badge"
      style={{ flexShrink: 0 }}
    >
      repeat
    </Badge>
  );
}
