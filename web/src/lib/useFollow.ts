import { useCallback, useEffect, useRef, useState } from "react";
import { api, call, type Job } from "../api/client";
import type { JobEvent } from "./live";
import { useSession } from "./session";

export const FINISHED = ["succeeded", "failed", "cancelled"];

/** The next known state of a followed job; an event or poll arriving late never moves an unfinished job's progress back. */
function forward(cur: JobEvent | null, next: JobEvent): JobEvent {
  if (cur && cur.id === next.id && cur.progress > next.progress && !FINISHED.includes(next.status)) return { ...next, progress: cur.progress };
  return next;
}

/** A background job followed by its live events and a poll (the fallback) until it ends; `onEnd` gets the finished
 * job as the API has it. `follow` starts following a job (or the known state of one), `reset` forgets it. */
export function useFollow(onEnd: (j: Job) => void, pollMs = 1500) {
  const { stream } = useSession();
  const [job, setJob] = useState<JobEvent | null>(null);
  const id = useRef<number | null>(null);
  const end = useRef(onEnd);
  end.current = onEnd;
  useEffect(() => {
    const onJob = (j: JobEvent) => {
      if (j.id === id.current) setJob((cur) => forward(cur, j));
    };
    stream.jobs.add(onJob);
    const poll = setInterval(async () => {
      if (id.current === null) return;
      try {
        const j = await call(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: id.current } } }));
        setJob((cur) => forward(cur, j));
      } catch {
        /* again at the next poll */
      }
    }, pollMs);
    return () => {
      stream.jobs.delete(onJob);
      clearInterval(poll);
    };
  }, [stream, pollMs]);
  useEffect(() => {
    if (!job || !FINISHED.includes(job.status) || id.current !== job.id) return;
    id.current = null;
    call(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: job.id } } })).then(
      (j) => end.current(j),
      () => {},
    );
  }, [job]);
  const follow = useCallback((j: JobEvent) => {
    id.current = j.id;
    setJob(j);
  }, []);
  /** Follow `j` only when no job is followed yet (a job found running when the page opens). */
  const adopt = useCallback((j: JobEvent) => {
    if (id.current !== null) return;
    id.current = j.id;
    setJob(j);
  }, []);
  const reset = useCallback(() => {
    id.current = null;
    setJob(null);
  }, []);
  return { job, follow, adopt, reset, running: job !== null && !FINISHED.includes(job.status) };
}
