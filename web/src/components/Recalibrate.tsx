import { Button, Card, Group, NumberInput, Progress, Select, Text, TextInput, Title } from "@mantine/core";
import { useEffect, useState } from "react";
import { api, call, type Job, type Model, type Schemas } from "../api/client";
import { fmtDateTime, fmtNum, fmtPct, fromLocalInput, toLocalInput } from "../lib/format";
import { useSession } from "../lib/session";
import { useFollow } from "../lib/useFollow";
import { Feedback } from "./Feedback";

const KEPT = "kept"; // the source "the scores the version keeps"
const STATION = "station"; // the source "the parts a station inspected in a window"
const HOUR = 3_600_000;

/** What a recalibrated version says about its thresholds (``metrics.calibration``), or null. */
export interface Calibration {
  from_model_id: number;
  source: "images" | "kept scores";
  scores_from?: "images" | "training";
  images: number;
  station?: string;
  since?: string;
  until?: string;
  before: { false_alarm_rate: number; image_threshold: number } | null;
  after: { false_alarm_rate: number; image_threshold: number };
  flagged_before: number | null;
  flagged_after: number;
}

export function calibrationOf(m: Model): Calibration | null {
  const c = (m.metrics as Record<string, unknown> | null)?.calibration;
  return c && typeof c === "object" ? (c as Calibration) : null;
}

/** One line on how a recalibrated version's thresholds were set. */
export function calibrationLine(c: Calibration): string {
  const from =
    c.source !== "images"
      ? `the scores it kept of the ${c.images} good images ${c.scores_from === "images" ? "of its last calibration" : "held out at training"}`
      : c.station
        ? `${c.images} parts ${c.station} inspected from ${fmtDateTime(c.since!)} to ${fmtDateTime(c.until!)}`
        : `${c.images} good images`;
  const flagged =
    c.flagged_before === null
      ? ""
      : ` · of them flagged: ${c.flagged_before} before, ${c.flagged_after} now`;
  return `Thresholds set again from version #${c.from_model_id} on ${from}, at ${fmtPct(c.after.false_alarm_rate, 2)} false alarms${flagged}.`;
}

/** An engineer sets a ready version's thresholds again without training: from a dataset's good images of today, from
 * the photos of known-good parts a station took in a window, or at another false-alarm rate from the scores the
 * version keeps. The result is a new version (a job), which
 * ``onDone`` is told of; stations keep their model until it is activated. */
export function Recalibrate({
  model,
  onDone,
  fromStation: asked = null,
}: {
  model: Model;
  onDone: (newModelId: number | null) => void;
  fromStation?: string | null; // start on this station's window (the drift watch's link)
}) {
  const { stations, station: headerStation } = useSession();
  const [datasets, setDatasets] = useState<Schemas["DatasetOut"][] | null>(null);
  const [dataset, setDataset] = useState<string | null>(asked ? STATION : KEPT);
  const [rate, setRate] = useState<number | string>("");
  const [station, setStation] = useState<string | null>(asked ?? headerStation ?? stations[0]?.name ?? null);
  const [since, setSince] = useState(() => toLocalInput(Date.now() - HOUR));
  const [until, setUntil] = useState(() => toLocalInput(Date.now()));
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const current = calibrationOf(model)?.after.false_alarm_rate;

  useEffect(() => {
    call(api.GET("/api/v1/datasets")).then(setDatasets, () => setDatasets([]));
  }, []);

  const { job, follow, running } = useFollow((j: Job) => {
    const result = j.result as { model_id?: number; images?: number; skipped?: number } | null;
    if (j.status === "succeeded" && result?.model_id) {
      const skipped = result.skipped ? ` (${result.skipped} images left out: unreadable or no longer stored)` : "";
      setMessage({ ok: true, text: `Version #${result.model_id} is ready${skipped}: activate it on a station to use its thresholds.` });
      onDone(result.model_id);
    } else {
      setMessage({ ok: false, text: `The recalibration ${j.status}: ${j.error ?? j.message}` });
      onDone(null);
    }
  }, 2000);

  const percent = rate === "" ? null : Number(rate);
  const badRate = percent !== null && !(percent > 0 && percent < 50);
  const fromStation = dataset === STATION;
  const [t0, t1] = [fromLocalInput(since), fromLocalInput(until)];
  const badWindow = fromStation && !(t0 < t1); // NaN (an empty or unreadable time) is refused too

  async function start() {
    setMessage(null);
    const body: Schemas["CalibrateIn"] = {};
    if (fromStation) {
      body.station = station!;
      body.since = new Date(t0).toISOString();
      body.until = new Date(t1).toISOString();
    } else if (dataset && dataset !== KEPT) body.dataset_id = Number(dataset);
    if (percent !== null) body.false_alarm_rate = percent / 100;
    try {
      follow(await call(api.POST("/api/v1/models/{model_id}/calibrate", { params: { path: { model_id: model.id } }, body })));
      onDone(null); // the new version is listed, calibrating
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    }
  }

  return (
    <Card withBorder mb="md" data-testid="recalibrate">
      <Title order={4} size="h5" mb={4}>
        Set the thresholds again
      </Title>
      <Text size="sm" c="gray.7" mb="xs">
        Without training: on good images of today (new light, a new batch of parts; not the images it was trained on), on the photos of
        known-good parts you ran through a station (those a reviewer marked defective are left out), or at another false-alarm rate from
        the good scores this version keeps. The result is a new version; stations keep theirs until you activate it.
      </Text>
      <Group align="end">
        <Select
          label="Good images"
          data={[
            { value: KEPT, label: "Scores this version keeps (rate only)" },
            ...(stations.length ? [{ value: STATION, label: "Known-good parts a station inspected" }] : []),
            ...(datasets ?? []).map((d) => ({ value: String(d.id), label: `${d.name} (${d.images} images; its good ones)` })),
          ]}
          value={dataset}
          onChange={setDataset}
          allowDeselect={false}
          w={320}
          data-testid="recalibrate-dataset"
        />
        <NumberInput
          label="False alarms (%)"
          placeholder={current !== undefined ? fmtNum(current * 100, 2) : "as now"}
          description="share of good parts flagged"
          min={0.01}
          max={49}
          step={0.1}
          decimalScale={3}
          value={rate}
          onChange={setRate}
          error={badRate ? "above 0 and below 50 %" : undefined}
          w={170}
          data-testid="recalibrate-rate"
        />
        {fromStation && (
          <>
            <Select
              label="Station"
              data={stations.map((s) => s.name)}
              value={station}
              onChange={setStation}
              allowDeselect={false}
              w={160}
              data-testid="recalibrate-station"
            />
            <TextInput
              type="datetime-local"
              label="From"
              value={since}
              onChange={(e) => setSince(e.currentTarget.value)}
              error={badWindow ? "before To" : undefined}
              data-testid="recalibrate-since"
            />
            <TextInput type="datetime-local" label="To" value={until} onChange={(e) => setUntil(e.currentTarget.value)} data-testid="recalibrate-until" />
          </>
        )}
        <Button onClick={start} disabled={running || badRate || badWindow || (fromStation && !station)} loading={running} data-testid="recalibrate-start">
          Recalibrate as a new version
        </Button>
      </Group>
      {running && job && (
        <Progress value={job.progress * 100} mt="sm" aria-label="Recalibration progress" data-testid="recalibrate-progress" />
      )}
      <Feedback msg={message} mt="sm" onClose={() => setMessage(null)} data-testid="recalibrate-message" />
    </Card>
  );
}
