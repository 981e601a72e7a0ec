import { Alert, Anchor, Badge, Button, Card, Group, Loader, Progress, SegmentedControl, Select, Stack, Text, Title } from "@mantine/core";
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, api, call, can, type Inspection, type Job, type Schemas } from "../api/client";
import { fmtDateTime, fmtShort } from "../lib/format";
import { useAuthedImage } from "../lib/images";
import type { JobEvent } from "../lib/live";
import { useSession } from "../lib/session";
import { DuplicateBadge, VerdictBadge } from "./Verdict";

export type Similar = Schemas["SimilarOut"];
const K = 8;
const FINISHED = ["succeeded", "failed", "cancelled"];

/** An inspection's small image with one box (image pixels) drawn over it. */
export function BoxedThumb({ m, size = 132 }: { m: Similar; size?: number }) {
  const { src } = useAuthedImage(m.thumbnail_url);
  const x = m.inspection;
  const ratio = x.width / x.height;
  return (
    <div className="lw-boxed" style={{ width: size, aspectRatio: `${ratio}` }}>
      {src ? <img src={src} alt={`inspection ${x.id}`} /> : <Loader size="xs" aria-hidden m="xs" />}
      {m.box && (
        <svg viewBox={`0 0 ${x.width} ${x.height}`} preserveAspectRatio="none" aria-hidden>
          <rect x={m.box[0]} y={m.box[1]} width={m.box[2]} height={m.box[3]} fill="none" stroke="#fff" strokeWidth={3} vectorEffect="non-scaling-stroke" />
          <rect x={m.box[0]} y={m.box[1]} width={m.box[2]} height={m.box[3]} fill="none" stroke="#e03131" strokeWidth={2} strokeDasharray="4 2" vectorEffect="non-scaling-stroke" />
        </svg>
      )}
    </div>
  );
}

function Match({ m }: { m: Similar }) {
  const x = m.inspection;
  const type = x.defect_type ?? null;
  return (
    <a href={`#/inspections/${x.id}`} className="lw-match" data-testid="similar-item" data-id={x.id} aria-label={`Inspection ${x.id}, similarity ${m.similarity.toFixed(2)}`}>
      <BoxedThumb m={m} />
      <Group gap={4} mt={4} wrap="nowrap">
        <VerdictBadge verdict={x.verdict} review={x.review_verdict} size="xs" />
        <Text size="xs" fw={700} ff="monospace" title="cosine similarity">
          {m.similarity.toFixed(2)}
        </Text>
      </Group>
      <Group gap={4} wrap="wrap">
        <Text size="xs" fw={600}>
          #{x.id}
        </Text>
        {x.reviewed && (
          <Badge size="xs" variant={type ? "filled" : "outline"} color={type ? "grape.9" : "gray.8"} style={{ flexShrink: 0 }} data-testid="similar-type" title="reviewed">
            {type ?? "reviewed"}
          </Badge>
        )}
        <DuplicateBadge of={x.duplicate_of} kind={x.duplicate_kind} />
      </Group>
      <Text size="xs" c="gray.7" truncate title={fmtDateTime(x.created_at)}>
        {x.station} · {fmtShort(x.created_at)}
      </Text>
    </a>
  );
}

/** Earlier inspections whose defects look most like this one's, best first, each a link to its page. */
export function SimilarStrip({ x }: { x: Inspection }) {
  const { me, stream } = useSession();
  const [region, setRegion] = useState<string>("all");
  const [scope, setScope] = useState<string>("station");
  const [items, setItems] = useState<Similar[] | null>(null);
  const [error, setError] = useState<{ status: number; message: string } | null>(null);
  const [job, setJob] = useState<JobEvent | Job | null>(null);
  const jobId = useRef<number | null>(null);

  const load = useCallback(async () => {
    setItems(null);
    setError(null);
    try {
      const got = await call(
        api.GET("/api/v1/inspections/{inspection_id}/similar", {
          params: {
            path: { inspection_id: x.id },
            query: {
              k: K,
              until: x.created_at, // past ones only
              verdict: "anomalous", // defects: judged or reviewed defective (a review counts over the model)
              ...(region !== "all" ? { region: Number(region) } : {}),
              ...(scope === "station" ? { station: x.station } : {}),
            },
          },
        }),
      );
      setItems(got);
    } catch (e) {
      setError({ status: e instanceof ApiError ? e.status : 0, message: (e as Error).message });
    }
  }, [x.id, x.station, x.created_at, region, scope]);

  useEffect(() => {
    load();
  }, [load]);

  // backfill progress: live job events, and a poll in case the live connection is down
  useEffect(() => {
    const onJob = (j: JobEvent) => {
      if (j.id === jobId.current) setJob(j);
    };
    stream.jobs?.add(onJob);
    const t = setInterval(async () => {
      if (jobId.current === null) return;
      try {
        setJob(await call(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: jobId.current } } })));
      } catch {
        /* the next poll tries again */
      }
    }, 1500);
    return () => {
      stream.jobs?.delete(onJob);
      clearInterval(t);
    };
  }, [stream]);

  useEffect(() => {
    if (job && FINISHED.includes(job.status) && jobId.current !== null) {
      jobId.current = null;
      if (job.status === "succeeded") load();
    }
  }, [job, load]);

  async function backfill() {
    try {
      const j = await call(api.POST("/api/v1/search/backfill", { body: {} }));
      jobId.current = j.id;
      setJob(j);
    } catch (e) {
      setError({ status: e instanceof ApiError ? e.status : 0, message: (e as Error).message });
    }
  }

  let body: React.ReactNode;
  if (error?.status === 409) {
    body = (
      <Alert color="yellow" title="No search vectors for this inspection" data-testid="similar-no-vectors">
        <Text size="sm">
          It was inspected before defect search was on, or by a model that gives none.{" "}
          {can(me.role, "engineer") ? "Run the backfill to compute them for every stored inspection." : "An engineer can run the backfill."}
        </Text>
        {can(me.role, "engineer") && !job && (
          <Button size="xs" mt="xs" onClick={backfill} data-testid="backfill">
            Run the backfill
          </Button>
        )}
      </Alert>
    );
  } else if (error) {
    body = (
      <Alert color="red" title="Cannot search similar inspections" data-testid="similar-error">
        {error.message}
        <div>
          <Button size="xs" mt="xs" variant="default" onClick={load}>
            Try again
          </Button>
        </div>
      </Alert>
    );
  } else if (!items) {
    body = (
      <Group gap="xs" data-testid="similar-loading">
        <Loader size="sm" aria-label="Searching similar inspections" />
      </Group>
    );
  } else if (items.length === 0) {
    body = (
      <Text size="sm" c="gray.7" data-testid="similar-empty">
        No earlier inspection{scope === "station" ? ` of ${x.station}` : ""} looks like this one yet.
      </Text>
    );
  } else {
    body = (
      <div className="lw-strip" role="list" aria-label="Similar past inspections" data-testid="similar-list">
        {items.map((m) => (
          <div role="listitem" key={`${m.inspection.id}-${m.region}`}>
            <Match m={m} />
          </div>
        ))}
      </div>
    );
  }

  return (
    <Card withBorder data-testid="similar">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4">
          Similar past defects
        </Title>
        <Group gap="xs">
          {x.regions.length > 1 && (
            <Select
              aria-label="Search by region"
              size="xs"
              w={150}
              value={region}
              onChange={(v) => setRegion(v ?? "all")}
              allowDeselect={false}
              data={[{ value: "all", label: "All regions" }, ...x.regions.map((_, i) => ({ value: String(i), label: `Region ${i + 1}` }))]}
              data-testid="similar-region"
            />
          )}
          <SegmentedControl
            size="xs"
            aria-label="Which stations"
            value={scope}
            onChange={setScope}
            data={[
              { value: "station", label: `Same station` },
              { value: "any", label: "Any station" },
            ]}
          />
        </Group>
      </Group>
      {job && (
        <Stack gap={4} mb="xs" data-testid="backfill-job">
          <Text size="sm">
            Backfill job #{job.id}: {job.status}
            {job.message ? ` · ${job.message}` : ""}
          </Text>
          <Progress value={job.progress * 100} aria-label="Backfill progress" data-progress={job.progress} />
        </Stack>
      )}
      {body}
    </Card>
  );
}

/** The first upload of this inspection's image and its repeats, when there are any. */
export function DuplicatesCard({ x }: { x: Inspection }) {
  const [d, setD] = useState<Schemas["DuplicatesOut"] | null>(null);
  useEffect(() => {
    let live = true;
    setD(null);
    call(api.GET("/api/v1/inspections/{inspection_id}/duplicates", { params: { path: { inspection_id: x.id } } })).then(
      (got) => live && setD(got),
      () => {},
    );
    return () => {
      live = false;
    };
  }, [x.id]);
  if (!d || d.repeats.length === 0) return null;
  const all = [d.original, ...d.repeats];
  return (
    <Card withBorder data-testid="duplicates">
      <Title order={3} size="h4" mb={4}>
        Same image uploaded {all.length} times
      </Title>
      <Text size="sm" c="gray.7" mb="xs">
        Repeats are not counted in line statistics.
      </Text>
      <Group gap="xs">
        {all.map((y) => (
          <Anchor key={y.id} href={`#/inspections/${y.id}`} size="sm" fw={y.id === x.id ? 700 : 400} aria-current={y.id === x.id ? "page" : undefined}>
            #{y.id} {y.id === d.original.id ? "(original)" : `(${y.duplicate_kind ?? "near"})`} · {fmtDateTime(y.created_at)}
          </Anchor>
        ))}
      </Group>
    </Card>
  );
}
