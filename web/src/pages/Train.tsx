import {
  Alert,
  Anchor,
  Button,
  Card,
  Grid,
  Group,
  Progress,
  Select,
  Stack,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useEffect, useRef, useState } from "react";
import { api, call, postForm, type Dataset, type Job, type Schemas } from "../api/client";
import { DropZone } from "../components/DropZone";
import { InspectArea } from "../components/InspectArea";
import { maskPng, photoSize, type Box } from "../lib/area";
import type { JobEvent } from "../lib/live";
import { useSession } from "../lib/session";

const BATCH_FILES = 20;
const BATCH_BYTES = 40 * 1024 * 1024;

function batches(files: File[]): File[][] {
  const out: File[][] = [];
  let cur: File[] = [];
  let size = 0;
  for (const f of files) {
    if (cur.length && (cur.length >= BATCH_FILES || size + f.size > BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(f);
    size += f.size;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** "1.2 MB" */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

async function upload(datasetId: number, files: File[], onProgress: (sent: number, total: number) => void) {
  let added = 0;
  const skipped: string[] = [];
  let sent = 0;
  const total = files.reduce((n, f) => n + f.size, 0);
  onProgress(0, total);
  for (const batch of batches(files)) {
    const form = new FormData();
    batch.forEach((f) => form.append("files", f, f.name));
    const r = await postForm<Schemas["UploadOut"]>(`/api/v1/datasets/${datasetId}/images`, form);
    added += r.added;
    skipped.push(...r.skipped);
    sent += batch.reduce((n, f) => n + f.size, 0);
    onProgress(sent, total);
  }
  return { added, skipped };
}

/** A job's progress never shown going back: the same job's newer report keeps the larger figure. */
export function forward(cur: JobEvent | null, next: JobEvent): JobEvent {
  if (cur && cur.id === next.id && cur.progress > next.progress && !FINISHED.includes(next.status)) {
    return { ...next, progress: cur.progress };
  }
  return next;
}

const FINISHED = ["succeeded", "failed", "cancelled"];

export default function TrainPage() {
  const { stream } = useSession();
  const [datasets, setDatasets] = useState<Dataset[]>([]);
  const [name, setName] = useState(`good parts ${new Date().toISOString().slice(0, 10)}`);
  const [existing, setExisting] = useState<string | null>(null);
  const [good, setGood] = useState<File[]>([]);
  const [test, setTest] = useState<File[]>([]);
  const [testExisting, setTestExisting] = useState<string | null>(null);
  const [method, setMethod] = useState<string>("combined");
  const [backbone, setBackbone] = useState<string>("efficientnet_lite0");
  const [size, setSize] = useState<string>("256");
  const [status, setStatus] = useState<string | null>(null);
  const [uploaded, setUploaded] = useState<{ sent: number; total: number } | null>(null);
  const [active, setActive] = useState<Job[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [job, setJob] = useState<JobEvent | null>(null);
  const [finished, setFinished] = useState<Job | null>(null);
  const [busy, setBusy] = useState(false);
  const [areaBoxes, setAreaBoxes] = useState<Box[]>([]);
  const [areaMask, setAreaMask] = useState<File | null>(null);
  const [areaPhoto, setAreaPhoto] = useState<File | null>(null);
  const jobId = useRef<number | null>(null);
  const drawnOn = areaPhoto ?? good[0] ?? null;
  const chosen = datasets.find((d) => String(d.id) === existing);

  async function removeArea() {
    if (!chosen) return;
    setError(null);
    try {
      await call(api.DELETE("/api/v1/datasets/{dataset_id}/area", { params: { path: { dataset_id: chosen.id } } }));
      call(api.GET("/api/v1/datasets")).then(setDatasets, () => {});
    } catch (e) {
      setError((e as Error).message);
    }
  }

  /** The area drawn or uploaded, given to the dataset before the training is queued (its models inspect it). */
  async function setArea(datasetId: number) {
    if (!areaBoxes.length && !areaMask) return;
    setStatus("Setting the inspection area…");
    let mask: Blob = areaMask!;
    if (areaBoxes.length) {
      const { width, height } = await photoSize(drawnOn!);
      mask = await maskPng(areaBoxes, width, height);
    }
    const form = new FormData();
    form.append("file", mask, areaMask?.name ?? "area.png");
    const ds = await postForm<Dataset>(`/api/v1/datasets/${datasetId}/area`, form, "PUT");
    setStatus(`The models of ${ds.name} inspect ${Math.round((ds.area_inspected ?? 1) * 100)} % of each photo.`);
  }

  useEffect(() => {
    call(api.GET("/api/v1/datasets")).then(setDatasets, () => {});
    // a job already queued or running (started here before, or by someone else): shown and followed
    call(api.GET("/api/v1/jobs", { params: { query: { active: true } } })).then(
      (jobs) => {
        const train = jobs.filter((j) => j.kind === "train");
        setActive(train);
        if (train.length && jobId.current === null) {
          jobId.current = train[0].id;
          setJob(train[0]);
          setBusy(true);
          setStatus(`Training job #${train[0].id} is ${train[0].status}.`);
        }
      },
      () => {},
    );
  }, []);

  // progress: live job events, and a poll in case the live connection is down
  useEffect(() => {
    const onJob = (j: JobEvent) => {
      if (j.id === jobId.current) setJob((cur) => forward(cur, j));
    };
    stream.jobs.add(onJob);
    const poll = setInterval(async () => {
      if (jobId.current === null) return;
      try {
        const j = await call(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: jobId.current } } }));
        setJob((cur) => forward(cur, j));
      } catch {
        /* the next poll tries again */
      }
    }, 2000);
    return () => {
      stream.jobs.delete(onJob);
      clearInterval(poll);
    };
  }, [stream]);

  useEffect(() => {
    if (!job || !FINISHED.includes(job.status) || jobId.current === null) return;
    const id = jobId.current;
    call(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: id } } })).then((j) => {
      setFinished(j);
      jobId.current = null;
      setBusy(false);
      setActive((a) => a.filter((x) => x.id !== id));
    });
  }, [job]);

  async function start() {
    setError(null);
    setFinished(null);
    setJob(null);
    setBusy(true);
    try {
      let datasetId = existing ? Number(existing) : null;
      if (!datasetId) {
        if (!good.length) throw new Error("Add good images first: drop them in the box, or choose an existing dataset.");
        const ds = await call(api.POST("/api/v1/datasets", { body: { name: name.trim() || "good parts" } }));
        datasetId = ds.id;
      }
      if (good.length) {
        setStatus("Uploading good images…");
        const r = await upload(datasetId, good, (sent, total) => setUploaded({ sent, total }));
        setStatus(`Uploaded ${r.added} good images${r.skipped.length ? `; skipped ${r.skipped.length}: ${r.skipped.slice(0, 3).join("; ")}` : ""}.`);
      }
      await setArea(datasetId);
      let testId: number | null = testExisting ? Number(testExisting) : null;
      if (!testId && test.length) {
        const ds = await call(api.POST("/api/v1/datasets", { body: { name: `${name.trim() || "good parts"} (test)` } }));
        testId = ds.id;
        setStatus("Uploading the test set…");
        await upload(testId, test, (sent, total) => setUploaded({ sent, total }));
      }
      setUploaded(null);
      const j = await call(
        api.POST("/api/v1/jobs/train", {
          body: {
            dataset_id: datasetId,
            test_dataset_id: testId,
            method: method as "patchcore" | "padim" | "auto" | "combined",
            backbone,
            image_size: Number(size),
          },
        }),
      );
      jobId.current = j.id;
      setJob(j);
      setStatus(`Training job #${j.id} started.`);
      setGood([]);
      setTest([]);
      setAreaBoxes([]);
      setAreaMask(null);
      setAreaPhoto(null);
      call(api.GET("/api/v1/datasets")).then(setDatasets, () => {});
    } catch (e) {
      setError((e as Error).message);
      setUploaded(null);
      setBusy(false);
    }
  }

  async function cancel() {
    if (jobId.current === null) return;
    try {
      await call(api.POST("/api/v1/jobs/{job_id}/cancel", { params: { path: { job_id: jobId.current } } }));
    } catch (e) {
      setError((e as Error).message);
    }
  }

  const modelId = (finished?.result as { model_id?: number } | null)?.model_id;

  return (
    <Stack>
      <Title order={2}>Train a model</Title>
      {active.length > 1 && (
        <Alert color="blue" title="Training jobs queued or running" data-testid="active-jobs">
          {active.map((j) => `#${j.id} ${j.status}${j.message ? ` (${j.message})` : ""}`).join(" · ")}. A new job waits for these.
        </Alert>
      )}
      {error && (
        <Alert color="red" title="Training did not start" role="alert">
          {error}
        </Alert>
      )}
      {(status || job) && (
        <Card withBorder data-testid="training-progress">
          {status && <Text size="sm">{status}</Text>}
          {uploaded && (
            <>
              <Progress value={uploaded.total ? (100 * uploaded.sent) / uploaded.total : 0} mt="xs" aria-label="upload progress" />
              <Text size="sm" mt={4} data-testid="upload-bytes">
                {fmtBytes(uploaded.sent)} of {fmtBytes(uploaded.total)} sent
              </Text>
            </>
          )}
          {job && (
            <>
              <Group justify="space-between" mt="sm">
                <Text fw={600}>
                  Job #{job.id}: {job.status}
                </Text>
                <Text size="sm" data-testid="job-message">
                  {FINISHED.includes(job.status) ? job.message : `Phase: ${job.message}`} · {Math.round(job.progress * 100)} %
                </Text>
              </Group>
              <Progress
                value={job.progress * 100}
                mt="xs"
                size="xl"
                striped={!FINISHED.includes(job.status)}
                animated={!FINISHED.includes(job.status)}
                color={job.status === "failed" ? "red" : job.status === "succeeded" ? "green" : "blue"}
                aria-label="training progress"
                data-testid="job-progress"
                data-progress={job.progress}
              />
            </>
          )}
          {finished?.status === "succeeded" && (
            <Alert color="green" mt="sm" title="Training finished" data-testid="training-done">
              Model version #{modelId} is ready. <Anchor href={`#/models?id=${modelId}`} inherit>Open it in Models</Anchor> to look at it and activate it on a station.
            </Alert>
          )}
          {finished?.status === "failed" && (
            <Alert color="red" mt="sm" title="Training failed">
              {finished.error}
            </Alert>
          )}
          {finished?.status === "cancelled" && (
            <Alert color="yellow" mt="sm">
              Training was cancelled.
            </Alert>
          )}
        </Card>
      )}
      <Grid>
        <Grid.Col span={{ base: 12, md: 7 }}>
          <Card withBorder>
            <Stack>
              <Title order={3} size="h4">
                1. Good images
              </Title>
              <Select
                label="Dataset"
                description="A new dataset from the images below, or one uploaded before"
                data={[{ value: "", label: "New dataset" }, ...datasets.map((d) => ({ value: String(d.id), label: `${d.name} (${d.images} images)` }))]}
                value={existing ?? ""}
                onChange={(v) => setExisting(v || null)}
                allowDeselect={false}
              />
              {!existing && <TextInput label="New dataset name" value={name} onChange={(e) => setName(e.currentTarget.value)} maxLength={200} />}
              <DropZone files={good} onFiles={setGood} label="Good part images" testid="drop-good" />
              <InspectArea
                photo={drawnOn}
                onPhoto={setAreaPhoto}
                boxes={areaBoxes}
                onBoxes={setAreaBoxes}
                maskFile={areaMask}
                onMaskFile={setAreaMask}
                current={chosen?.area_inspected ?? null}
                onRemove={removeArea}
              />
              <Title order={3} size="h4">
                2. Test set (optional)
              </Title>
              <Select
                label="Test dataset"
                description="Labelled images to evaluate the new version on: its metrics, score histogram and ROC curve"
                data={[
                  { value: "", label: "None, or upload one below" },
                  ...datasets.map((d) => ({ value: String(d.id), label: `${d.name} (${d.images} images)` })),
                ]}
                value={testExisting ?? ""}
                onChange={(v) => setTestExisting(v || null)}
                allowDeselect={false}
              />
              {!testExisting && (
                <DropZone
                  files={test}
                  onFiles={setTest}
                  label="Labelled test images: a zip with good/ and one folder per defect type"
                  testid="drop-test"
                />
              )}
            </Stack>
          </Card>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 5 }}>
          <Card withBorder>
            <Stack>
              <Title order={3} size="h4">
                3. Settings
              </Title>
              <Select
                label="Method"
                data={[
                  { value: "combined", label: "Combined (PatchCore and PaDiM scores added; the default)" },
                  { value: "patchcore", label: "PatchCore (faster per image; sharp maps on objects)" },
                  { value: "padim", label: "PaDiM (fastest to train; aligned surfaces)" },
                  { value: "auto", label: "Automatic (fits both, keeps the one that finds painted defects better)" },
                ]}
                value={method}
                onChange={(v) => v && setMethod(v)}
                allowDeselect={false}
              />
              <Select
                label="Backbone"
                data={["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]}
                value={backbone}
                onChange={(v) => v && setBackbone(v)}
                allowDeselect={false}
              />
              <Select
                label="Image size (px)"
                description="Smaller trains and scores faster; larger finds smaller defects"
                data={["64", "128", "192", "256", "320", "384", "512"]}
                value={size}
                onChange={(v) => v && setSize(v)}
                allowDeselect={false}
                data-testid="image-size"
              />
              <Button onClick={start} loading={busy} disabled={busy} data-testid="start-training">
                Start training
              </Button>
              {busy && jobId.current !== null && (
                <>
                  <Text size="sm" c="gray.7" data-testid="start-blocked">
                    Job #{jobId.current} is {job?.status ?? "running"}: its progress is at the top of the page.
                  </Text>
                  <Button variant="default" color="red" onClick={cancel}>
                    Cancel training
                  </Button>
                </>
              )}
            </Stack>
          </Card>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}
