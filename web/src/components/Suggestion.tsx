import { Badge, Group, Kbd, Text, UnstyledButton } from "@mantine/core";
import { useEffect, useState } from "react";
import { api, call, type Schemas } from "../api/client";

export type Suggestion = Schemas["SuggestionOut"];

/** The service's defect-type suggestion for an inspection (a vote of its nearest reviewed look-alikes). */
export function useSuggestion(id: number): Suggestion | null {
  const [s, setS] = useState<Suggestion | null>(null);
  useEffect(() => {
    let live = true;
    setS(null);
    call(api.GET("/api/v1/inspections/{inspection_id}/suggestion", { params: { path: { inspection_id: id } } })).then(
      (got) => live && setS(got),
      () => {}, // no suggestion is shown; the review works as before
    );
    return () => {
      live = false;
    };
  }, [id]);
  return s;
}

/** "Looks like scratch · 62 % likely · 5 look-alikes voted  [A] accept" — clicking it (or the A key) accepts it. The
 * service's confidence is the chance it is right, calibrated on this installation's reviews (a single look-alike
 * never reads as certain); the count says how much it rests on. */
export function SuggestionChip({ s, onAccept, disabled }: { s: Suggestion; onAccept: () => void; disabled?: boolean }) {
  if (!s.defect_type) return null;
  const pct = Math.round(s.confidence * 100);
  const voted = `${s.neighbours} reviewed look-alike${s.neighbours === 1 ? "" : "s"} voted`;
  const learned = s.learned_from
    ? `, found by a similarity learned from this station's ${s.learned_from} reviewed defects`
    : "";
  return (
    <UnstyledButton
      onClick={onAccept}
      disabled={disabled}
      className="lw-suggestion"
      data-testid="suggestion"
      aria-label={`Accept the suggested defect type ${s.defect_type} (${pct} % likely, ${voted}): saves the review as defective`}
      title={`A vote of ${voted}${learned}, weighted by similarity, with one pseudo-vote per known defect type`}
    >
      <Group gap={6} wrap="wrap" style={{ whiteSpace: "nowrap" }}>
        <Text size="sm" c="gray.8">
          Looks like
        </Text>
        <Badge color="grape.9" variant="filled" size="md" data-testid="suggestion-type" style={{ flexShrink: 0, overflow: "visible" }}>
          {s.defect_type}
        </Badge>
        <Text size="sm" data-testid="suggestion-confidence">
          {pct} % likely
        </Text>
        <Text size="xs" c="gray.8" data-testid="suggestion-votes">
          {voted}
        </Text>
        <Text size="sm" c="gray.8">
          <Kbd>A</Kbd> accept
        </Text>
      </Group>
    </UnstyledButton>
  );
}
