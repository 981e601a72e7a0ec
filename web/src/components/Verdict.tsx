import { Badge, Group } from "@mantine/core";
import type { Verdict } from "../api/client";

const LABEL: Record<Verdict, string> = { anomalous: "Defect", good: "Pass" };

/** What a review did to the model's verdict: null when nobody reviewed it. */
export function reviewOutcome(verdict: Verdict, review?: Verdict | null): "confirmed" | "overturned" | null {
  if (review == null) return null;
  return review === verdict ? "confirmed" : "overturned";
}

/** The verdict that counts: a reviewer's, once there is one ("confirmed" or "overturned" beside it), else the model's. */
export function VerdictBadge({
  verdict,
  review,
  size = "sm",
}: {
  verdict: Verdict;
  review?: Verdict | null;
  size?: "xs" | "sm" | "md" | "lg";
}) {
  const shown = review ?? verdict;
  const outcome = reviewOutcome(verdict, review);
  const badge = (
    <Badge
      color={shown === "anomalous" ? "red.9" : "#237a35"}
      size={size}
      variant="filled"
      miw={62}
      style={{ flexShrink: 0 }}
      data-testid="verdict"
      data-verdict={shown}
      title={outcome ? `model: ${LABEL[verdict]}; reviewed: ${LABEL[shown]}` : "model verdict, not reviewed"}
    >
      {LABEL[shown]}
    </Badge>
  );
  if (!outcome) return badge;
  return (
    <Group gap={4} wrap="wrap" style={{ rowGap: 2 }}>
      {badge}
      <Badge
        size={size === "lg" || size === "md" ? "sm" : "xs"}
        variant="outline"
        color={outcome === "overturned" ? "#b34700" : "gray.8"}
        data-testid="review-outcome"
        style={{ flexShrink: 0 }}
      >
        {outcome}
      </Badge>
    </Group>
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
