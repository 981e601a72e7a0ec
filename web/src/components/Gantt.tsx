import { useElementSize } from "@mantine/hooks";
import { useEffect, useMemo, useRef, useState } from "react";
import { type Change, type JobInfo, type Operation, type Window, byMachine, jobColor, step } from "../lib/schedules";

const ROW = 26; // px per machine
const AXIS = 22; // px of the time axis under the rows
const LABEL_W = 96; // px of the machines' names

function niceStep(span: number, px: number): number {
  const raw = (span / Math.max(px, 1)) * 90; // a tick about every 90 px
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export interface GanttProps {
  ops: Operation[];
  machines: string[];
  jobs: JobInfo[];
  now?: number;
  end?: number; // the time axis' end (default: the makespan)
  late?: Map<number, { end: number; due: number }>;
  changes?: Map<string, { change: Change; from: Operation }>;
  windows?: Window[]; // machines unavailable: hatched grey
  label: string;
  testid?: string;
}

/** What one operation is, in words (the tooltip and what a screen reader hears on focus). */
export function describeOp(o: Operation, p: Pick<GanttProps, "machines" | "jobs" | "late" | "changes">): string {
  const job = p.jobs[o.job];
  const parts = [`${job?.name ?? `J${o.job}`}, operation ${o.index + 1} on ${p.machines[o.machine] ?? o.machine}: ${o.start} to ${o.end}`];
  if (job?.due != null) parts.push(`due ${job.due}`);
  const late = p.late?.get(o.job);
  if (late) parts.push(`job late by ${late.end - late.due}`);
  const ch = p.changes?.get(`${o.job}:${o.index}`);
  if (ch?.change === "moved") parts.push(`moved from ${p.machines[ch.from.machine] ?? ch.from.machine}`);
  if (ch?.change === "shifted") parts.push(`shifted from ${ch.from.start} (${o.start - ch.from.start > 0 ? "+" : ""}${o.start - ch.from.start})`);
  return parts.join(" · ");
}

/** Machines × time on a canvas (a thousand operations draw in a few milliseconds): jobs coloured the same
 * everywhere, their names only where they fit, the plan's "now" as a dashed line, late jobs' overrun past their due
 * date in red, a replan's moved (thick black outline) and shifted (dashed outline) operations. Hover or focus (Tab,
 * then arrow keys) shows an operation. */
export function Gantt({ ops, machines, jobs, now, end, late, changes, windows, label, testid = "gantt" }: GanttProps) {
  const { ref, width } = useElementSize();
  const canvas = useRef<HTMLCanvasElement>(null);
  const rows = useMemo(() => byMachine(ops, machines.length), [ops, machines.length]);
  const span = Math.max(end ?? 0, ...ops.map((o) => o.end), now ?? 0, 1);
  const plotW = Math.max(width - LABEL_W - 8, 50);
  const height = machines.length * ROW + AXIS;
  const x = (t: number) => (t / span) * plotW;
  const [focus, setFocus] = useState<[number, number] | null>(null);
  const [hover, setHover] = useState<{ op: Operation; left: number; top: number } | null>(null);
  const focused = focus ? rows[focus[0]]?.[focus[1]] : undefined;

  useEffect(() => {
    const c = canvas.current;
    if (!c || width === 0) return;
    let ctx: CanvasRenderingContext2D | null = null;
    try {
      ctx = c.getContext("2d");
    } catch {
      ctx = null;
    }
    if (!ctx) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(plotW * dpr);
    c.height = Math.round(height * dpr);
    c.style.width = `${plotW}px`;
    c.style.height = `${height}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, plotW, height);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    // rows and ticks
    const tick = niceStep(span, plotW);
    ctx.strokeStyle = "#e9ecef";
    ctx.fillStyle = "#495057";
    for (let t = 0; t <= span; t += tick) {
      const px = Math.round(x(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(px, 0);
      ctx.lineTo(px, height - AXIS);
      ctx.stroke();
      ctx.fillText(String(t), Math.min(px + 2, plotW - 30), height - AXIS / 2);
    }
    for (let m = 0; m <= machines.length; m++) {
      ctx.beginPath();
      ctx.moveTo(0, m * ROW + 0.5);
      ctx.lineTo(plotW, m * ROW + 0.5);
      ctx.stroke();
    }
    // machines unavailable: hatched grey
    for (const w of windows ?? []) {
      const x0 = x(w.start);
      const x1 = x(w.end ?? span);
      const y = w.machine * ROW + 1;
      ctx.save();
      ctx.fillStyle = "#dee2e6";
      ctx.fillRect(x0, y, x1 - x0, ROW - 2);
      ctx.beginPath();
      ctx.rect(x0, y, x1 - x0, ROW - 2);
      ctx.clip();
      ctx.strokeStyle = "#868e96";
      ctx.lineWidth = 1;
      for (let hx = x0 - ROW; hx < x1; hx += 6) {
        ctx.beginPath();
        ctx.moveTo(hx, y + ROW);
        ctx.lineTo(hx + ROW, y);
        ctx.stroke();
      }
      ctx.restore();
    }
    // bars; a job's name where it fits (measured once per job)
    const widths = new Map<number, number>();
    rows.forEach((row, m) => {
      const y = m * ROW + 3;
      const h = ROW - 6;
      for (const o of row) {
        const x0 = x(o.start);
        const w = Math.max(x(o.end) - x0, 1);
        ctx.fillStyle = jobColor(o.job);
        ctx.fillRect(x0, y, w, h);
        const ch = changes?.get(`${o.job}:${o.index}`);
        if (ch) {
          ctx.save();
          ctx.strokeStyle = ch.change === "moved" ? "#000" : "#e8590c";
          ctx.lineWidth = ch.change === "moved" ? 3 : 2;
          if (ch.change === "shifted") ctx.setLineDash([4, 2]);
          ctx.strokeRect(x0 + 1, y + 1, Math.max(w - 2, 1), h - 2);
          ctx.restore();
        }
        if (w > 18) {
          const name = jobs[o.job]?.name ?? `J${o.job}`;
          let tw = widths.get(o.job);
          if (tw === undefined) widths.set(o.job, (tw = ctx.measureText(name).width));
          if (tw + 6 <= w) {
            ctx.fillStyle = "#fff";
            ctx.fillText(name, x0 + 3, y + h / 2);
          }
        }
      }
    });
    // late jobs: from the due date to the job's end, a red band under its last operation's row, a tick at the due date
    if (late?.size) {
      const lastOp = new Map<number, Operation>();
      for (const o of ops) if ((lastOp.get(o.job)?.end ?? -1) < o.end) lastOp.set(o.job, o);
      ctx.fillStyle = "#c92a2a";
      for (const [j, l] of late) {
        const o = lastOp.get(j);
        if (!o) continue;
        const y = o.machine * ROW + ROW - 4;
        ctx.fillRect(x(l.due), y, Math.max(x(l.end) - x(l.due), 2), 3);
        ctx.fillRect(x(l.due) - 1, o.machine * ROW + 1, 2, ROW - 2);
      }
    }
    // now
    if (now != null && now > 0) {
      ctx.save();
      ctx.strokeStyle = "#212529";
      ctx.setLineDash([5, 3]);
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x(now), 0);
      ctx.lineTo(x(now), height - AXIS);
      ctx.stroke();
      ctx.restore();
    }
    // the focused operation
    if (focused) {
      ctx.save();
      ctx.strokeStyle = "#1864ab";
      ctx.lineWidth = 3;
      ctx.strokeRect(x(focused.start) - 2, focused.machine * ROW + 1, Math.max(x(focused.end) - x(focused.start), 1) + 4, ROW - 2);
      ctx.restore();
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [rows, width, plotW, height, span, now, late, changes, windows, jobs, focused]);

  function opAt(px: number, py: number): Operation | null {
    const m = Math.floor(py / ROW);
    const row = rows[m];
    if (!row) return null;
    const t = (px / plotW) * span;
    // rows are in start order: a binary search for the last operation starting at or before t
    let lo = 0;
    let hi = row.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (row[mid].start <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && row[found].end >= t ? row[found] : null;
  }

  const props = { machines, jobs, late, changes };
  const shown = hover?.op ?? focused;
  return (
    <div ref={ref} style={{ width: "100%", position: "relative" }} data-testid={testid} data-operations={ops.length}>
      <div
        role="application"
        aria-roledescription="Gantt chart"
        aria-label={`${label}. Arrow keys move between operations: left and right along a machine, up and down across machines.`}
        tabIndex={0}
        className="lw-gantt"
        onKeyDown={(e) => {
          if (!["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].includes(e.key)) return;
          e.preventDefault();
          setHover(null);
          setFocus((f) => step(rows, f, e.key));
        }}
        onFocus={() => setFocus((f) => f ?? step(rows, null, ""))}
        onBlur={() => setFocus(null)}
        style={{ display: "flex", outlineOffset: 2 }}
      >
        <div style={{ width: LABEL_W, flex: "none" }} aria-hidden="true">
          {machines.map((m) => (
            <div key={m} style={{ height: ROW, lineHeight: `${ROW}px`, fontSize: 12, overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap", paddingRight: 6 }}>
              {m}
            </div>
          ))}
        </div>
        <canvas
          ref={canvas}
          style={{ display: "block", width: plotW, height }}
          onMouseMove={(e) => {
            const r = e.currentTarget.getBoundingClientRect();
            const op = opAt(e.clientX - r.left, e.clientY - r.top);
            setHover(op ? { op, left: e.clientX - r.left + LABEL_W, top: e.clientY - r.top } : null);
          }}
          onMouseLeave={() => setHover(null)}
        />
      </div>
      {shown && (
        <div
          className="lw-gantt-tip"
          data-testid={`${testid}-tip`}
          style={{
            left: Math.min(hover ? hover.left + 12 : LABEL_W + x(shown.start), Math.max(width - 260, 0)),
            top: hover ? hover.top + 12 : shown.machine * ROW + ROW + 2,
          }}
        >
          {describeOp(shown, props)}
        </div>
      )}
      <div aria-live="polite" className="lw-sr-only" data-testid={`${testid}-focus`}>
        {focused ? describeOp(focused, props) : ""}
      </div>
    </div>
  );
}
