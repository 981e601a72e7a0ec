import {
  Alert,
  Autocomplete,
  Badge,
  Button,
  Card,
  Grid,
  Group,
  Kbd,
  Loader,
  Progress,
  SegmentedControl,
  Slider,
  Stack,
  Switch,
  Table,
  Text,
  Textarea,
  Title,
} from "@mantine/core";
import { useEffect, useRef, useState } from "react";
import { api, call, can, type Inspection, type Model, type Schemas, type Verdict } from "../api/client";
import { fmtDateTime, fmtNum, modelName } from "../lib/format";
import { useAuthedImage } from "../lib/images";
import { useSession } from "../lib/session";
import { SuggestionChip, useSuggestion } from "./Suggestion";
import { DuplicateBadge, VerdictBadge } from "./Verdict";

type Review = Schemas["ReviewOut"];

export const DEFECT_TYPES = ["scratch", "spot", "chip", "crack", "dent", "contamination", "missing part"];

function Stage({
  x,
  showHeat,
  opacity,
  showBoxes,
  maxVh = 62,
}: {
  x: Inspection;
  showHeat: boolean;
  opacity: number;
  showBoxes: boolean;
  maxVh?: number; // the image's height at most, in % of the window's
}) {
  const image = useAuthedImage(x.image_url);
  const heat = useAuthedImage(x.heatmap_url);
  if (image.error) return <Alert color="red">{image.error}</Alert>;
  const ratio = x.width / x.height;
  return (
    <div
      className="lw-stage"
      data-testid="inspection-stage"
      style={{ aspectRatio: `${x.width} / ${x.height}`, width: `min(100%, calc(${maxVh}vh * ${ratio.toFixed(4)}))` }}
    >
      {!image.src && <Loader aria-label="Loading image" m="md" />}
      {image.src && <img src={image.src} alt={`Part image of inspection ${x.id}`} />}
      {showHeat && heat.src && (
        <img
          src={heat.src}
          alt="Anomaly heatmap"
          style={{ opacity }}
          data-testid="heatmap"
        />
      )}
      {showBoxes && (
        <svg
          viewBox={`0 0 ${x.width} ${x.height}`}
          preserveAspectRatio="none"
          aria-hidden
          data-testid="region-boxes"
          data-kind={defective(x) ? "defect" : "below-threshold"}
        >
          {x.regions.map((r, i) => (
            <g key={i}>
              <rect
                x={r.x}
                y={r.y}
                width={r.width}
                height={r.height}
                fill="none"
                stroke="#fff"
                strokeWidth={Math.max(1, x.width / 200)}
                vectorEffect="non-scaling-stroke"
              />
              <rect
                x={r.x}
                y={r.y}
                width={r.width}
                height={r.height}
                fill="none"
                // a part that passed has no defect: its highest areas are drawn grey and dotted, not as defects
                stroke={defective(x) ? "#e03131" : "#868e96"}
                strokeDasharray={defective(x) ? "4 3" : "1 3"}
                strokeWidth={2}
                vectorEffect="non-scaling-stroke"
              />
              <text
                x={r.x + 2}
                y={Math.max(r.y - 3, x.height * 0.05)}
                fill="#fff"
                stroke="#000"
                strokeWidth={0.6}
                fontSize={Math.max(10, x.height / 22)}
                fontWeight={700}
              >
                {i + 1}: {r.max_score.toFixed(2)}
              </text>
            </g>
          ))}
        </svg>
      )}
    </div>
  );
}

/** Judged or reviewed defective: the verdict that counts is a defect. */
export function defective(x: Pick<Inspection, "verdict" | "review_verdict">): boolean {
  return (x.review_verdict ?? x.verdict) === "anomalous";
}

/** Every review of the inspection, newest first: who, when, verdict, defect type, note. */
function ReviewHistory({ x, version }: { x: Inspection; version: number }) {
  const [reviews, setReviews] = useState<Review[] | null>(null);
  useEffect(() => {
    let live = true;
    call(api.GET("/api/v1/inspections/{inspection_id}/reviews", { params: { path: { inspection_id: x.id } } })).then(
      (got) => live && setReviews(got),
      () => live && setReviews([]),
    );
    return () => {
      live = false;
    };
  }, [x.id, version]);
  if (!reviews || reviews.length === 0) return null;
  return (
    <Card withBorder data-testid="review-history">
      <Title order={3} size="h4" mb="xs">
        Reviews ({reviews.length})
      </Title>
      <Stack gap="xs">
        {[...reviews].reverse().map((r, i) => (
          <div key={r.id} data-testid="review-entry">
            <Group gap="xs" wrap="wrap">
              <VerdictBadge verdict={x.verdict} review={r.verdict} size="xs" />
              {r.defect_type && (
                <Badge size="xs" color="grape.9" variant="filled">
                  {r.defect_type}
                </Badge>
              )}
              <Text size="sm" fw={600}>
                {r.reviewer ?? "a deleted user"}
              </Text>
              <Text size="sm" c="gray.7">
                {fmtDateTime(r.created_at)}
                {i === 0 && reviews.length > 1 ? " · latest, counts" : ""}
              </Text>
            </Group>
            {r.note && (
              <Text size="sm" style={{ whiteSpace: "pre-wrap" }} data-testid="review-note">
                {r.note}
              </Text>
            )}
          </div>
        ))}
      </Stack>
    </Card>
  );
}

/** Normalised score on a 0..1 bar with the threshold (0.5) marked. */
function ScoreBar({ value }: { value: number }) {
  const v = Math.max(0, Math.min(1, value));
  return (
    <div style={{ position: "relative" }}>
      <Progress value={v * 100} color={value >= 0.5 ? "red.9" : "#237a35"} size="lg" aria-label="normalised score" />
      <div
        style={{ position: "absolute", left: "50%", top: -3, bottom: -3, width: 2, background: "#212529" }}
        title="threshold"
      />
    </div>
  );
}

export interface ReviewApi {
  submit: (verdict: Verdict) => void;
}

function ReviewForm({ x, onReviewed }: { x: Inspection; onReviewed?: (x: Inspection) => void }) {
  const [verdict, setVerdict] = useState<Verdict>(x.verdict);
  const [defect, setDefect] = useState("");
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null); // a suggestion whose acceptance overturns a pass
  const noteRef = useRef<HTMLTextAreaElement>(null);
  const defectRef = useRef<HTMLInputElement>(null);
  const suggestion = useSuggestion(x.id);

  useEffect(() => {
    setVerdict(x.verdict);
    setDefect("");
    setNote("");
    setError(null);
    setDone(null);
    setConfirming(null);
  }, [x.id, x.verdict]);

  async function submit(v: Verdict = verdict, type: string = defect) {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await call(
        api.POST("/api/v1/inspections/{inspection_id}/reviews", {
          params: { path: { inspection_id: x.id } },
          body: { verdict: v, defect_type: v === "anomalous" && type.trim() ? type.trim() : null, note },
        }),
      );
      setDone((v === x.verdict ? "Verdict confirmed" : "Verdict overturned") + (v === "anomalous" && type.trim() ? ` as ${type.trim()}.` : "."));
      setConfirming(null);
      onReviewed?.({ ...x, reviewed: true, review_verdict: v, defect_type: v === "anomalous" && type.trim() ? type.trim() : null });
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  // a suggestion names a defect: only for a part judged or reviewed defective
  const offered = suggestion?.defect_type && (x.verdict === "anomalous" || x.review_verdict === "anomalous") ? suggestion : null;

  // the suggested defect type: defective, that type, saved (and on to the next in the queue); when the verdict that
  // counts is a pass, saving it as a defect changes the verdict: asked first
  function accept(type: string, confirmed = false) {
    setVerdict("anomalous");
    setDefect(type);
    if (!defective(x) && !confirmed) {
      setConfirming(type);
      return;
    }
    submit("anomalous", type);
  }

  // reviewer shortcuts; not while typing in a field (except Ctrl+Enter to submit)
  useEffect(() => {
    function onKey(e: KeyboardEvent) {
      const t = e.target as HTMLElement;
      const typing = t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable;
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        submit();
        return;
      }
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "a") {
        if (offered?.defect_type) accept(offered.defect_type);
      } else if (e.key === "c") submit(x.verdict);
      else if (e.key === "o") submit(x.verdict === "good" ? "anomalous" : "good");
      else if (e.key === "g") setVerdict("good");
      else if (e.key === "d") {
        e.preventDefault();
        setVerdict("anomalous");
        defectRef.current?.focus();
      } else if (e.key === "n") {
        e.preventDefault();
        noteRef.current?.focus();
      } else if (/^[1-7]$/.test(e.key)) {
        setVerdict("anomalous");
        setDefect(DEFECT_TYPES[Number(e.key) - 1]);
      }
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  return (
    <Card withBorder data-testid="review-form">
      <Title order={3} size="h4" mb="xs">
        Review
      </Title>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <Stack gap="sm">
          {offered?.defect_type && <SuggestionChip s={offered} onAccept={() => accept(offered.defect_type!)} disabled={busy} />}
          {confirming && (
            <Alert color="orange" title="This changes the verdict" data-testid="suggestion-confirm">
              <Text size="sm" mb="xs">
                The part counts as a pass now. Save it as defective ({confirming})?
              </Text>
              <Group gap="xs">
                <Button size="xs" color="red.9" onClick={() => accept(confirming, true)} loading={busy}>
                  Save as defect
                </Button>
                <Button size="xs" variant="default" onClick={() => setConfirming(null)}>
                  Cancel
                </Button>
              </Group>
            </Alert>
          )}
          <Group gap="xs">
            <Button color="#237a35" variant={verdict === x.verdict ? "filled" : "default"} onClick={() => submit(x.verdict)} loading={busy}>
              Confirm {x.verdict === "good" ? "pass" : "defect"} <Kbd ml={6}>C</Kbd>
            </Button>
            <Button
              color="#b34700"
              variant="default"
              onClick={() => submit(x.verdict === "good" ? "anomalous" : "good")}
              loading={busy}
            >
              Overturn <Kbd ml={6}>O</Kbd>
            </Button>
          </Group>
          <SegmentedControl
            aria-label="Reviewed verdict"
            value={verdict}
            onChange={(v) => setVerdict(v as Verdict)}
            data={[
              { label: "Good part (G)", value: "good" },
              { label: "Defective (D)", value: "anomalous" },
            ]}
          />
          <Autocomplete
            ref={defectRef}
            label="Defect type"
            description="1–7 picks a common type"
            placeholder={verdict === "anomalous" ? "e.g. scratch" : "only for defective parts"}
            data={DEFECT_TYPES}
            value={defect}
            onChange={setDefect}
            disabled={verdict !== "anomalous"}
            maxLength={100}
          />
          <Textarea
            ref={noteRef}
            label="Note (N)"
            value={note}
            onChange={(e) => setNote(e.currentTarget.value)}
            autosize
            minRows={2}
            maxLength={5000}
          />
          <Group>
            <Button type="submit" loading={busy} data-testid="review-submit">
              Save review <Kbd ml={6}>Ctrl+Enter</Kbd>
            </Button>
          </Group>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          {done && (
            <Alert color="green" role="status" data-testid="review-done">
              {done}
            </Alert>
          )}
        </Stack>
      </form>
    </Card>
  );
}

export function InspectionView({
  x,
  onReviewed,
  below,
  reviewFirst = false,
}: {
  x: Inspection;
  onReviewed?: (x: Inspection) => void;
  below?: React.ReactNode; // under the image (the detail page's similar past defects)
  reviewFirst?: boolean; // the review queue: the decision buttons before the scores, the image small enough to see both
}) {
  const { me } = useSession();
  const [showHeat, setShowHeat] = useState(true);
  const [showBoxes, setShowBoxes] = useState(true);
  const [opacity, setOpacity] = useState(0.5);
  const [model, setModel] = useState<Model | null>(null);
  const [reviewsVersion, setReviewsVersion] = useState(0);

  useEffect(() => {
    let live = true;
    call(api.GET("/api/v1/models/{model_id}", { params: { path: { model_id: x.model_id } } })).then(
      (m) => live && setModel(m),
      () => {},
    );
    return () => {
      live = false;
    };
  }, [x.model_id]);

  useEffect(() => {
    function onKey(e: KeyboardEvent) {
      const t = e.target as HTMLElement;
      if (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "h") setShowHeat((v) => !v);
      else if (e.key === "b") setShowBoxes((v) => !v);
      else if (e.key === "[") setOpacity((v) => Math.max(0, v - 0.1));
      else if (e.key === "]") setOpacity((v) => Math.min(1, v + 0.1));
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const reviewCard = can(me.role, "operator") ? (
    <ReviewForm
      x={x}
      onReviewed={(y) => {
        setReviewsVersion((v) => v + 1);
        onReviewed?.(y);
      }}
    />
  ) : (
    <Text size="sm" c="gray.7">
      Reviewing needs the operator role.
    </Text>
  );

  return (
    <Grid>
      <Grid.Col span={{ base: 12, md: 7 }}>
        <Stack>
        <Card withBorder>
          <Group justify="space-between" mb="xs">
            <Group gap="xs">
              <Title order={2} size="h3">
                Inspection #{x.id}
              </Title>
              <VerdictBadge verdict={x.verdict} review={x.review_verdict} size="lg" />
              <DuplicateBadge of={x.duplicate_of} kind={x.duplicate_kind} size="md" />
            </Group>
            <Text size="sm" c="gray.7">
              {x.station} · {fmtDateTime(x.created_at)}
            </Text>
          </Group>
          <Stage x={x} showHeat={showHeat} opacity={opacity} showBoxes={showBoxes} maxVh={reviewFirst ? 42 : 62} />
          <Group mt="sm" gap="lg">
            <Switch label="Heatmap (H)" checked={showHeat} onChange={(e) => setShowHeat(e.currentTarget.checked)} data-testid="heatmap-toggle" />
            <Switch label="Region boxes (B)" checked={showBoxes} onChange={(e) => setShowBoxes(e.currentTarget.checked)} />
            <div style={{ flex: 1, minWidth: 160 }}>
              <Text size="xs" c="gray.7" id="opacity-label">
                Heatmap opacity ([ and ])
              </Text>
              <Slider
                value={opacity}
                onChange={setOpacity}
                min={0}
                max={1}
                step={0.05}
                disabled={!showHeat}
                label={(v) => `${Math.round(v * 100)} %`}
                thumbLabel="Heatmap opacity"
              />
            </div>
          </Group>
        </Card>
        {below}
        </Stack>
      </Grid.Col>
      <Grid.Col span={{ base: 12, md: 5 }}>
        <Stack>
          {reviewFirst && reviewCard}
          <Card withBorder>
            <Title order={3} size="h4" mb="xs">
              Score
            </Title>
            <ScoreBar value={x.normalized_score} />
            <Table mt="sm" withRowBorders={false} verticalSpacing={2}>
              <Table.Tbody>
                <Table.Tr>
                  <Table.Td>Normalised score</Table.Td>
                  <Table.Td ff="monospace" data-testid="normalized-score">
                    {fmtNum(x.normalized_score, 3)} (threshold 0.500)
                  </Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Td>Raw score</Table.Td>
                  <Table.Td ff="monospace">
                    {fmtNum(x.score, 4)}
                    {model?.threshold != null && ` (threshold ${fmtNum(model.threshold, 4)})`}
                  </Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Td>Model version</Table.Td>
                  <Table.Td>
                    <a href="#/models">#{x.model_id}</a>
                    {model && ` · ${modelName(model.name)} (${model.method}, ${model.backbone}, ${model.image_size} px)`}
                  </Table.Td>
                </Table.Tr>
                <Table.Tr>
                  <Table.Td>File</Table.Td>
                  <Table.Td>{x.filename ?? "–"} ({x.width}×{x.height})</Table.Td>
                </Table.Tr>
                {x.duplicate_of != null && (
                  <Table.Tr>
                    <Table.Td>Repeat of</Table.Td>
                    <Table.Td data-testid="duplicate-of">
                      <a href={`#/inspections/${x.duplicate_of}`}>#{x.duplicate_of}</a> ({x.duplicate_kind ?? "near"} copy: not
                      counted in line statistics)
                    </Table.Td>
                  </Table.Tr>
                )}
                <Table.Tr>
                  <Table.Td>Latency</Table.Td>
                  <Table.Td>{x.latency_ms.toFixed(0)} ms</Table.Td>
                </Table.Tr>
              </Table.Tbody>
            </Table>
            <Text fw={600} mt="sm" size="sm">
              Regions ({x.regions.length})
            </Text>
            {x.regions.length > 0 && !defective(x) && (
              <Text size="xs" c="gray.7" data-testid="regions-below-threshold">
                The part passed: these are its highest areas, below the part's threshold (dotted grey), not defects.
              </Text>
            )}
            {x.regions.length === 0 ? (
              <Text size="sm" c="gray.7">
                No region over the threshold.
              </Text>
            ) : (
              <Table striped verticalSpacing={2} data-testid="regions">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>#</Table.Th>
                    <Table.Th>Box (x, y, w×h)</Table.Th>
                    <Table.Th>Max</Table.Th>
                    <Table.Th>Mean</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {x.regions.map((r, i) => (
                    <Table.Tr key={i}>
                      <Table.Td>{i + 1}</Table.Td>
                      <Table.Td>
                        {r.x}, {r.y}, {r.width}×{r.height}
                      </Table.Td>
                      <Table.Td ff="monospace">{r.max_score.toFixed(3)}</Table.Td>
                      <Table.Td ff="monospace">{r.mean_score.toFixed(3)}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            )}
          </Card>
          {!reviewFirst && reviewCard}
          <ReviewHistory x={x} version={reviewsVersion} />
        </Stack>
      </Grid.Col>
    </Grid>
  );
}
