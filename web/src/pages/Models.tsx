import {
  Alert,
  Badge,
  Button,
  Card,
  Center,
  Grid,
  Group,
  Loader,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from "@mantine/core";
import { useCallback, useEffect, useMemo, useState } from "react";
import uPlot from "uplot";
import { api, call, can, downloadFrom, type Model, type Schemas } from "../api/client";
import { Chart } from "../components/Chart";
import { areaOf } from "../lib/area";
import { Recalibrate, calibrationLine, calibrationOf } from "../components/Recalibrate";
import { RegistryImport, RegistryPublish, registryLine, registryOf } from "../components/Registry";
import { fmtDateTime, fmtNum, fmtPct, modelName } from "../lib/format";
import { useRoute } from "../lib/router";
import { useSession } from "../lib/session";
import { histogram, roc } from "../lib/stats";
import { Feedback } from "../components/Feedback";

type Metrics = Record<string, unknown>;

function metric(m: Model, key: string): number | null {
  const v = (m.metrics as Metrics | null)?.[key];
  return typeof v === "number" ? v : null;
}

function statusColor(s: string) {
  return s === "ready" ? "#237a35" : s === "failed" ? "red.9" : "blue.9";
}

function thresholdLine(threshold: number | null): uPlot.Plugin {
  return {
    hooks: {
      draw: (u) => {
        if (threshold === null) return;
        const x = u.valToPos(threshold, "x", true);
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#212529";
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.restore();
      },
    },
  };
}

function ScoreCharts({ model }: { model: Model }) {
  const [scores, setScores] = useState<Schemas["TestScoresOut"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setScores(null);
    setError(null);
    call(api.GET("/api/v1/models/{model_id}/test-scores", { params: { path: { model_id: model.id } } })).then(
      setScores,
      (e) => setError((e as Error).message),
    );
  }, [model.id]);

  const charts = useMemo(() => {
    if (!scores || scores.items.length === 0) return null;
    const h = histogram(scores.items, scores.threshold ?? null);
    const left = uPlot.paths.bars!({ size: [0.45, 40], align: -1 });
    const right = uPlot.paths.bars!({ size: [0.45, 40], align: 1 });
    const lo = h.centers[0] - h.width;
    const hi = h.centers[h.centers.length - 1] + h.width;
    const histOpts: Omit<uPlot.Options, "width" | "height"> = {
      legend: { live: false },
      scales: { x: { time: false, range: [lo, hi] } },
      axes: [{ label: "raw anomaly score" }, { label: "test images", size: 50 }],
      series: [
        {},
        { label: "good", fill: "rgba(47,158,68,0.55)", stroke: "#2b8a3e", paths: left, points: { show: false } },
        { label: "defective", fill: "rgba(224,49,49,0.5)", stroke: "#c92a2a", paths: right, points: { show: false } },
      ],
      plugins: [thresholdLine(scores.threshold ?? null)],
    };
    const r = roc(scores.items);
    const rocOpts: Omit<uPlot.Options, "width" | "height"> = {
      legend: { live: false },
      scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
      axes: [{ label: "false-alarm rate (good flagged)" }, { label: "detection rate", size: 50 }],
      series: [
        {},
        { label: `ROC (AUC ${r.auc.toFixed(3)})`, stroke: "#1c7ed6", width: 2, points: { show: false } },
        { label: "chance", stroke: "#868e96", dash: [4, 4], points: { show: false } },
      ],
    };
    return {
      hist: { options: histOpts, data: [h.centers, h.good, h.bad] as uPlot.AlignedData },
      roc: { options: rocOpts, data: [r.fpr, r.tpr, r.fpr] as uPlot.AlignedData },
    };
  }, [scores]);

  if (error) return <Alert color="red">{error}</Alert>;
  if (!scores) return <Loader size="sm" aria-label="Loading test scores" />;
  if (!charts) {
    return (
      <Alert color="gray" title="No evaluation" data-testid="no-evaluation">
        This version was trained without a test dataset, so there are no test scores to chart. Train with a labelled test
        set (good and defective images) to see the score histogram and ROC curve.
      </Alert>
    );
  }
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }}>
      <Card withBorder data-testid="histogram">
        <Text fw={600} size="sm">
          Test scores: good vs defective (dashed: threshold)
        </Text>
        <Chart label="Histogram of test image scores, good against defective, with the threshold" options={charts.hist.options} data={charts.hist.data} />
      </Card>
      <Card withBorder data-testid="roc">
        <Text fw={600} size="sm">
          ROC curve
        </Text>
        <Chart label="ROC curve of the test images" options={charts.roc.options} data={charts.roc.data} />
      </Card>
    </SimpleGrid>
  );
}

/** The model's ONNX export as one zip (manifest, model.onnx, crops.onnx): unzipped, a model directory that
 * `linewatch predict` and ONNX Runtime score with on a PC without the service. */
function downloadBundle(id: number) {
  return downloadFrom(`/api/v1/models/${id}/bundle`, `linewatch-model-${id}.zip`);
}

export default function ModelsPage() {
  const { me, stations, reloadStations, station: headerStation } = useSession();
  const [models, setModels] = useState<Model[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  const [target, setTarget] = useState<string | null>(headerStation);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const engineer = can(me.role, "engineer");
  const targetStation = stations.find((s) => s.name === target);
  const query = useRoute().query;
  const wanted = Number(query.get("id")); // #/models?id=N opens version N
  const recalibrateAt = query.get("station"); // ...&station=S: its thresholds set again on S's parts (drift watch)

  const load = useCallback(async () => {
    try {
      const ms = await call(api.GET("/api/v1/models"));
      setModels(ms);
      // first shown: the model running on the header's station, else one running anywhere, else the newest ready
      setSelected(
        (s) =>
          s ??
          ms.find((m) => m.id === wanted)?.id ??
          (headerStation ? ms.find((m) => m.stations.includes(headerStation)) : undefined)?.id ??
          ms.find((m) => m.stations.length > 0)?.id ??
          ms.find((m) => m.status === "ready")?.id ??
          ms[0]?.id ??
          null,
      );
    } catch (e) {
      setError((e as Error).message);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  useEffect(() => {
    load();
  }, [load]);

  const model = models?.find((m) => m.id === selected) ?? null;
  // a recalibration queued (null: the list shows its new version, calibrating) or done (the new version, shown)
  const recalibrated = useCallback(
    (id: number | null) => {
      load().then(() => id !== null && setSelected(id));
    },
    [load],
  );

  async function act(what: () => Promise<unknown>, ok: string) {
    setBusy(true);
    setMessage(null);
    try {
      await what();
      setMessage({ ok: true, text: ok });
      await Promise.all([load(), reloadStations()]);
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  }

  if (error) return <Alert color="red" title="Cannot load models">{error}</Alert>;
  if (!models) {
    return (
      <Center p="xl">
        <Loader aria-label="Loading models" />
      </Center>
    );
  }
  return (
    <Stack>
      <Title order={2}>Models</Title>
      <Feedback msg={message} onClose={() => setMessage(null)} data-testid="models-message" />
      {models.length === 0 ? (
        <Alert color="gray" title="No model versions yet" data-testid="models-empty">
          {engineer ? (
            <>
              Train the first one on the <a href="#/train">Train</a> page.
            </>
          ) : (
            "An engineer trains the first model version."
          )}
        </Alert>
      ) : (
        <Card withBorder padding={0}>
          <Table.ScrollContainer minWidth={520}>
            <Table highlightOnHover data-testid="models-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Version</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th visibleFrom="lg">Method</Table.Th>
                  <Table.Th>Image AUROC</Table.Th>
                  <Table.Th visibleFrom="lg">Pixel AUROC</Table.Th>
                  <Table.Th visibleFrom="lg">AUPRO</Table.Th>
                  <Table.Th>False alarms</Table.Th>
                  <Table.Th>Misses</Table.Th>
                  <Table.Th>Active on</Table.Th>
                  <Table.Th visibleFrom="lg">Created</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {models.map((m) => (
                  <Table.Tr
                    key={m.id}
                    onClick={() => setSelected(m.id)}
                    bg={m.id === selected ? "var(--mantine-color-blue-0)" : undefined}
                    style={{ cursor: "pointer" }}
                  >
                    <Table.Td>
                      <button
                        type="button"
                        onClick={() => setSelected(m.id)}
                        className="lw-link-button"
                        aria-pressed={m.id === selected}
                      >
                        #{m.id} {modelName(m.name)}
                      </button>
                    </Table.Td>
                    <Table.Td>
                      <Badge color={statusColor(m.status)} variant="filled" miw={72} style={{ overflow: "visible" }}>
                        {m.status}
                      </Badge>
                    </Table.Td>
                    <Table.Td visibleFrom="lg">
                      {m.method} · {m.backbone} · {m.image_size}px
                    </Table.Td>
                    <Table.Td>{fmtNum(metric(m, "image_auroc"))}</Table.Td>
                    <Table.Td visibleFrom="lg">{fmtNum(metric(m, "pixel_auroc"))}</Table.Td>
                    <Table.Td visibleFrom="lg">{fmtNum(metric(m, "aupro"))}</Table.Td>
                    <Table.Td>{fmtPct(metric(m, "false_alarm_rate"))}</Table.Td>
                    <Table.Td>{fmtPct(metric(m, "miss_rate"))}</Table.Td>
                    <Table.Td>{m.stations.length ? m.stations.join(", ") : "–"}</Table.Td>
                    <Table.Td visibleFrom="lg">{fmtDateTime(m.created_at)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </Card>
      )}
      {model && (
        <Grid>
          <Grid.Col span={12}>
            <Card withBorder>
              <Group justify="space-between" mb="sm">
                <Title order={3} size="h4">
                  Version #{model.id}: {modelName(model.name)}
                </Title>
                <Group gap="sm">
                  <Text size="sm" c="gray.7">
                    threshold {fmtNum(model.threshold, 4)}
                    {metric(model, "images") !== null && ` · evaluated on ${metric(model, "images")} test images`}
                  </Text>
                  {model.status === "ready" && (
                    <Button
                      size="xs"
                      variant="default"
                      data-testid="download-bundle"
                      title="The ONNX export with its thresholds, as one zip: unzip it and score with linewatch predict on a PC without the service"
                      onClick={() =>
                        downloadBundle(model.id).catch((e) => setMessage({ ok: false, text: (e as Error).message }))
                      }
                    >
                      Download for ONNX Runtime (zip)
                    </Button>
                  )}
                </Group>
              </Group>
              {engineer && (
                <Group align="end" mb="md">
                  <Select
                    label="Station"
                    placeholder={stations.length ? "Choose a station" : "No stations yet"}
                    data={stations.map((s) => s.name)}
                    value={target}
                    onChange={setTarget}
                    w={200}
                    data-testid="activate-station"
                  />
                  <Button
                    disabled={!target || model.status !== "ready" || targetStation?.active_model_id === model.id}
                    loading={busy}
                    data-testid="activate"
                    onClick={() =>
                      confirm(
                        `Activate version #${model.id} on ${target}? Its next inspections are scored by this model.`,
                      ) &&
                      act(
                        () =>
                          call(
                            api.POST("/api/v1/models/{model_id}/activate", {
                              params: { path: { model_id: model.id } },
                              body: { station: target! },
                            }),
                          ),
                        `Version #${model.id} is now active on ${target}.`,
                      )
                    }
                  >
                    Activate on station
                  </Button>
                  <Button
                    variant="default"
                    disabled={!target || targetStation?.previous_model_id == null}
                    loading={busy}
                    data-testid="rollback"
                    onClick={() =>
                      confirm(`Roll ${target} back to version #${targetStation?.previous_model_id}?`) &&
                      act(
                        () => call(api.POST("/api/v1/stations/{name}/rollback", { params: { path: { name: target! } } })),
                        `${target} is back on its previous model.`,
                      )
                    }
                  >
                    Roll back station
                  </Button>
                  {target && (
                    <Text size="sm" c="gray.7" data-testid="station-runs">
                      {target} runs #{targetStation?.active_model_id ?? "nothing"} now
                      {targetStation?.active_model_id === model.id ? " (this version)" : ""}
                      {targetStation?.previous_model_id == null ? " · nothing to roll back to" : ` · a rollback brings back #${targetStation.previous_model_id}`}
                    </Text>
                  )}
                </Group>
              )}
              {calibrationOf(model) && (
                <Text size="sm" mb="sm" data-testid="calibration-line">
                  {calibrationLine(calibrationOf(model)!)}
                </Text>
              )}
              {areaOf(model.metrics) !== null && (
                <Text size="sm" mb="sm" data-testid="area-line">
                  Inspects {Math.round(areaOf(model.metrics)! * 100)} % of each photo: its dataset&apos;s inspection area. What lies
                  outside it is neither scored nor flagged.
                </Text>
              )}
              {registryOf(model) && (
                <Text size="sm" mb="sm" data-testid="registry-line">
                  {registryLine(registryOf(model)!)}
                </Text>
              )}
              {engineer && model.status === "ready" && (
                <Recalibrate model={model} onDone={recalibrated} fromStation={model.id === wanted ? recalibrateAt : null} />
              )}
              {engineer && model.status === "ready" && <RegistryPublish key={model.id} model={model} />}
              {model.status === "ready" ? (
                <ScoreCharts model={model} />
              ) : (
                <Text size="sm" c="gray.7">
                  {model.status === "training"
                    ? "Still training."
                    : model.status === "calibrating"
                      ? "Its thresholds are being set."
                      : model.status === "importing"
                        ? "Being imported from the model registry."
                        : "This version failed to train, to be calibrated or to be imported."}
                </Text>
              )}
            </Card>
          </Grid.Col>
        </Grid>
      )}
      {engineer && <RegistryImport onDone={recalibrated} />}
    </Stack>
  );
}
