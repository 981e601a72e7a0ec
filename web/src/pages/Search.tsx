import {
  Alert,
  Autocomplete,
  Button,
  Card,
  Grid,
  Group,
  NumberInput,
  Select,
  Slider,
  Stack,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useEffect, useRef, useState } from "react";
import { can, postForm, type Inspection } from "../api/client";
import { DEFECT_TYPES } from "../components/InspectionView";
import type { Similar } from "../components/SimilarStrip";
import { DuplicateBadge, VerdictBadge } from "../components/Verdict";
import { fmtDateTime, fmtShort } from "../lib/format";
import { useAuthedImage } from "../lib/images";
import { useSession } from "../lib/session";

const ACCEPT = ".png,.jpg,.jpeg,.bmp,.tif,.tiff,image/*";

/** A match: its image with the heatmap laid over it and the matching region boxed. */
function MatchCard({ m, opacity }: { m: Similar; opacity: number }) {
  const x: Inspection = m.inspection;
  const image = useAuthedImage(x.image_url);
  const heat = useAuthedImage(x.heatmap_url);
  return (
    <Card withBorder padding="xs" data-testid="search-result" data-id={x.id}>
      <a href={`#/inspections/${x.id}`} aria-label={`Open inspection ${x.id}`}>
        <div className="lw-stage" style={{ aspectRatio: `${x.width} / ${x.height}`, width: "100%" }}>
          {image.src && <img src={image.src} alt={`Part image of inspection ${x.id}`} />}
          {heat.src && opacity > 0 && <img src={heat.src} alt="" style={{ opacity }} data-testid="result-heatmap" />}
          {m.box && (
            <svg viewBox={`0 0 ${x.width} ${x.height}`} preserveAspectRatio="none" aria-hidden>
              <rect x={m.box[0]} y={m.box[1]} width={m.box[2]} height={m.box[3]} fill="none" stroke="#fff" strokeWidth={3} vectorEffect="non-scaling-stroke" />
              <rect x={m.box[0]} y={m.box[1]} width={m.box[2]} height={m.box[3]} fill="none" stroke="#e03131" strokeWidth={2} strokeDasharray="4 2" vectorEffect="non-scaling-stroke" />
            </svg>
          )}
        </div>
      </a>
      <Group justify="space-between" mt={6} wrap="nowrap">
        <Group gap={4} wrap="nowrap">
          <VerdictBadge verdict={x.verdict} review={x.review_verdict} />
          <a href={`#/inspections/${x.id}`}>
            <Text span size="sm" fw={600}>
              #{x.id}
            </Text>
          </a>
        </Group>
        <Text size="sm" ff="monospace" fw={700} title="cosine similarity" data-testid="result-similarity">
          {m.similarity.toFixed(3)}
        </Text>
      </Group>
      <Group gap={4} wrap="nowrap">
        <Text size="xs" c="gray.7" truncate title={fmtDateTime(x.created_at)}>
          {x.station} · {fmtShort(x.created_at)}
          {x.reviewed ? " · reviewed" : ""}
        </Text>
        <DuplicateBadge of={x.duplicate_of} kind={x.duplicate_kind} />
      </Group>
    </Card>
  );
}

/** Search past inspections by an image: the station's active model embeds it; nothing is stored. */
export default function SearchPage() {
  const { me, stations, station: headerStation } = useSession();
  const allowed = can(me.role, "operator");
  const withModel = stations.filter((s) => s.active_model_id != null).map((s) => s.name);
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [embedBy, setEmbedBy] = useState<string | null>(null);
  const [verdict, setVerdict] = useState<string | null>(null);
  const [defect, setDefect] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [k, setK] = useState<number>(12);
  const [opacity, setOpacity] = useState(0.5);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [results, setResults] = useState<Similar[] | null>(null);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (embedBy === null && withModel.length) setEmbedBy(headerStation && withModel.includes(headerStation) ? headerStation : withModel[0]);
  }, [embedBy, withModel, headerStation]);

  useEffect(() => {
    if (!file) return setPreview(null);
    const u = URL.createObjectURL(file);
    setPreview(u);
    return () => URL.revokeObjectURL(u);
  }, [file]);

  function choose(files: FileList | File[] | null | undefined) {
    const f = Array.from(files ?? []).find((x) => x.type.startsWith("image/") || /\.(png|jpe?g|bmp|tiff?)$/i.test(x.name));
    if (f) {
      setFile(f);
      setResults(null);
      setError(null);
    } else if (files && Array.from(files).length) setError("Choose an image file (PNG, JPEG, BMP or TIFF).");
  }

  async function search() {
    if (!file || !embedBy) return;
    setBusy(true);
    setError(null);
    // model_station's active model scores the upload; matches come from every station (or the one filtered)
    const q = new URLSearchParams({ model_station: embedBy, k: String(k) });
    if (verdict) q.set("verdict", verdict);
    if (defect.trim()) q.set("defect_type", defect.trim());
    if (since) q.set("since", `${since}T00:00:00`);
    if (until) q.set("until", `${until}T23:59:59`);
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      setResults(await postForm<Similar[]>(`/api/v1/search?${q}`, form));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Stack>
      <Title order={2}>Search by image</Title>
      {!allowed ? (
        <Alert color="yellow" title="Searching by an image needs the operator role" data-testid="search-forbidden">
          You are signed in as {me.role}. An inspection's page shows its similar past defects to every role.
        </Alert>
      ) : (
        <Grid>
          <Grid.Col span={{ base: 12, md: 4 }}>
            <Card withBorder>
              <Stack gap="sm">
                <div
                  className={`lw-drop${over ? " active" : ""}`}
                  onDragOver={(e) => {
                    e.preventDefault();
                    setOver(true);
                  }}
                  onDragLeave={() => setOver(false)}
                  onDrop={(e) => {
                    e.preventDefault();
                    setOver(false);
                    choose(e.dataTransfer.files);
                  }}
                  data-testid="search-drop"
                >
                  {preview ? (
                    <img src={preview} alt="The image to search by" style={{ maxWidth: "100%", maxHeight: 180 }} data-testid="search-preview" />
                  ) : (
                    <Text fw={600}>Drop an image here</Text>
                  )}
                  <Group justify="center" gap="xs" mt="xs">
                    <Button size="xs" variant="default" onClick={() => input.current?.click()}>
                      {file ? "Choose another" : "Choose an image"}
                    </Button>
                  </Group>
                  {file && (
                    <Text size="xs" mt={4} c="gray.7" truncate>
                      {file.name}
                    </Text>
                  )}
                  <input
                    ref={input}
                    type="file"
                    accept={ACCEPT}
                    hidden
                    aria-label="Image to search by"
                    onChange={(e) => {
                      choose(e.currentTarget.files);
                      e.currentTarget.value = "";
                    }}
                  />
                </div>
                <Select
                  label="Station"
                  description="its active model scores the image; matches are its inspections"
                  data={withModel}
                  value={embedBy}
                  onChange={setEmbedBy}
                  allowDeselect={false}
                  placeholder={withModel.length ? "Choose a station" : "no station has an active model"}
                  data-testid="search-embed-station"
                />
                <Text fw={600} size="sm">
                  Filter the matches
                </Text>
                <Select
                  label="Verdict"
                  placeholder="Any verdict"
                  data={[
                    { value: "anomalous", label: "Defect" },
                    { value: "good", label: "Pass" },
                  ]}
                  value={verdict}
                  onChange={setVerdict}
                  clearable
                />
                <Autocomplete label="Reviewed defect type" placeholder="Any" data={DEFECT_TYPES} value={defect} onChange={setDefect} maxLength={100} />
                <Group grow>
                  <TextInput type="date" label="From" value={since} onChange={(e) => setSince(e.currentTarget.value)} />
                  <TextInput type="date" label="To" value={until} onChange={(e) => setUntil(e.currentTarget.value)} />
                </Group>
                <NumberInput label="Matches" min={1} max={100} value={k} onChange={(v) => setK(Number(v) || 12)} w={120} />
                <Button onClick={search} loading={busy} disabled={!file || !embedBy} data-testid="search-submit">
                  Search
                </Button>
                {error && (
                  <Alert color="red" role="alert" data-testid="search-error">
                    {error}
                  </Alert>
                )}
              </Stack>
            </Card>
          </Grid.Col>
          <Grid.Col span={{ base: 12, md: 8 }}>
            <Stack>
              {results && (
                <Group justify="space-between">
                  <Text size="sm" data-testid="search-count">
                    {results.length} match{results.length === 1 ? "" : "es"}, most similar first
                  </Text>
                  <div style={{ width: 220 }}>
                    <Text size="xs" c="gray.7">
                      Heatmap opacity
                    </Text>
                    <Slider value={opacity} onChange={setOpacity} min={0} max={1} step={0.05} label={(v) => `${Math.round(v * 100)} %`} thumbLabel="Heatmap opacity" />
                  </div>
                </Group>
              )}
              {results && results.length === 0 && (
                <Alert color="gray" title="No matches" data-testid="search-empty">
                  No stored inspection with search vectors matches these filters.
                </Alert>
              )}
              {!results && !busy && (
                <Text c="gray.7" size="sm">
                  Choose an image and press Search: matches show here with their heatmaps. Nothing is stored.
                </Text>
              )}
              {results && results.length > 0 && (
                <div className="lw-results" data-testid="search-results">
                  {results.map((m) => (
                    <MatchCard key={`${m.inspection.id}-${m.region}`} m={m} opacity={opacity} />
                  ))}
                </div>
              )}
            </Stack>
          </Grid.Col>
        </Grid>
      )}
    </Stack>
  );
}
