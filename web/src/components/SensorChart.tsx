import { useMemo } from "react";
import type uPlot from "uplot";
import { fmtDateTime, fmtTime } from "../lib/format";
import { type LiveSeries, type MachineAlert, SCORE, alertSpan } from "../lib/machines";
import { Chart } from "./Chart";

/** What the charts of one machine page share and change without being rebuilt: the time window, the alerts to
 * mark, and what a drag-selection does. Mutated in place by the page; read by the charts' hooks on every draw. */
export interface ChartFrame {
  from: number; // seconds since the epoch
  to: number;
  alerts: MachineAlert[];
  onZoom: (from: number, to: number) => void;
}

/** uPlot's aligned data of one downsampled series: x, max, min, mean, with a null where readings are missing for
 * longer than two buckets (no line drawn across a gap). */
export function aligned(s: LiveSeries, step: number): uPlot.AlignedData {
  const x: number[] = [];
  const hi: (number | null)[] = [];
  const lo: (number | null)[] = [];
  const mean: (number | null)[] = [];
  for (let i = 0; i < s.t.length; i++) {
    if (i > 0 && step > 0 && s.t[i] - s.t[i - 1] > 2 * step) {
      x.push(s.t[i - 1] + step);
      hi.push(null);
      lo.push(null);
      mean.push(null);
    }
    x.push(s.t[i]);
    hi.push(s.max[i]);
    lo.push(s.min[i]);
    mean.push(s.mean[i]);
  }
  return [x, hi, lo, mean];
}

function timeLabels(span: number) {
  return (_u: uPlot, ticks: number[]) =>
    ticks.map((t) => {
      const iso = new Date(t * 1000).toISOString();
      return span > 2 * 86400 ? fmtDateTime(iso).slice(5, 10) : span > 6 * 3600 ? fmtDateTime(iso).slice(5, 16) : fmtTime(iso).slice(0, 5);
    });
}

function hLine(ctx: CanvasRenderingContext2D, u: uPlot, y: number, color: string, dash: number[]) {
  const py = u.valToPos(y, "y", true);
  if (py < u.bbox.top || py > u.bbox.top + u.bbox.height) return;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.setLineDash(dash);
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(u.bbox.left, py);
  ctx.lineTo(u.bbox.left + u.bbox.width, py);
  ctx.stroke();
  ctx.restore();
}

/** Alerts shaded over the plot (under the series) and marked on the time axis; the threshold and the sensor's
 * expected range as dashed lines; a drag-selection zooms. */
function marks(frame: ChartFrame, lines: { y: number; color: string }[]): uPlot.Plugin {
  return {
    hooks: {
      drawAxes: (u) => {
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        ctx.save();
        for (const a of frame.alerts) {
          const [s, e] = alertSpan(a);
          if (e < frame.from || s > frame.to) continue;
          const x0 = Math.max(left, u.valToPos(s, "x", true));
          const x1 = Math.min(left + width, Math.max(u.valToPos(e, "x", true), x0 + 3 * devicePixelRatio));
          ctx.fillStyle = a.status === "open" ? "rgba(224,49,49,0.18)" : "rgba(224,49,49,0.10)";
          ctx.fillRect(x0, top, x1 - x0, height);
          // a marker on the time axis
          ctx.fillStyle = "#c92a2a";
          ctx.fillRect(x0, top + height, Math.max(x1 - x0, 3 * devicePixelRatio), 4 * devicePixelRatio);
        }
        ctx.restore();
      },
      draw: (u) => {
        for (const l of lines) hLine(u.ctx, u, l.y, l.color, [6, 4]);
      },
      setSelect: (u) => {
        if (u.select.width < 5) return;
        const a = u.posToVal(u.select.left, "x");
        const b = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        if (b - a >= 60) frame.onZoom(a, b);
      },
    },
  };
}

/** One sensor (or the anomaly score) over the page's window: the min–max band of each bucket and its mean. */
export function SensorChart({
  series,
  step,
  frame,
  low,
  high,
  threshold,
  height = 180,
}: {
  series: LiveSeries;
  step: number;
  frame: ChartFrame;
  low?: number | null;
  high?: number | null;
  threshold?: number | null;
  height?: number;
}) {
  const score = series.sensor === SCORE;
  const stroke = score ? "#c92a2a" : "#1864ab";
  const options = useMemo<Omit<uPlot.Options, "width" | "height">>(() => {
    const lines: { y: number; color: string }[] = [];
    if (score && threshold != null) lines.push({ y: threshold, color: "#212529" });
    if (!score && low != null) lines.push({ y: low, color: "#a34100" });
    if (!score && high != null) lines.push({ y: high, color: "#a34100" });
    const unit = series.unit ? ` (${series.unit})` : "";
    return {
      legend: { show: true, live: true },
      cursor: { sync: { key: "machine" }, drag: { x: true, y: false, setScale: false } },
      scales: {
        x: { time: true, range: () => [frame.from, frame.to] },
        // the score spans orders of magnitude (a burst scores hundreds, the threshold is a few): an asinh scale,
        // linear near 0 and logarithmic beyond, shows both
        y: {
          ...(score ? { distr: 4 as const, asinh: 1 } : {}),
          range: (_u, min, max) => {
            let lo = min ?? 0;
            let hi = max ?? 1;
            const span = hi - lo || Math.abs(hi) || 1;
            // the threshold always; a sensor's range ends when they are near enough not to flatten the readings
            for (const l of lines) {
              if (score || (l.y >= lo - span && l.y <= hi + span)) {
                lo = Math.min(lo, l.y);
                hi = Math.max(hi, l.y);
              }
            }
            if (score) return [0, Math.max(hi * 1.2, 1)];
            const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
            return [lo - pad, hi + pad];
          },
        },
      },
      axes: [{ values: timeLabels(frame.to - frame.from) }, { size: 60 }],
      series: [
        { value: (_u, v) => (v == null ? "–" : fmtDateTime(new Date(v * 1000).toISOString())) },
        { label: "max", stroke: "transparent", points: { show: false }, value: (_u, v) => (v == null ? "–" : v.toPrecision(4)) },
        { label: "min", stroke: "transparent", points: { show: false }, value: (_u, v) => (v == null ? "–" : v.toPrecision(4)) },
        {
          label: score ? "anomaly score" : `mean${unit}`,
          stroke,
          width: 2,
          points: { show: false },
          value: (_u, v) => (v == null ? "–" : v.toPrecision(4)),
        },
      ],
      bands: [{ series: [1, 2], fill: score ? "rgba(224,49,49,0.25)" : "rgba(28,126,214,0.22)" }],
      plugins: [marks(frame, lines)],
    };
    // the window and alerts are read from `frame` on each draw: no rebuild when they move
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [series.sensor, series.unit, score, threshold, low, high, frame, Math.round((frame.to - frame.from) / 3600)]);
  // the page passes a new series object whenever its points change (live points are appended in place)
  const data = useMemo(() => aligned(series, step), [series, step]);
  const what = score ? "Anomaly score" : `${series.sensor}${series.unit ? ` in ${series.unit}` : ""}`;
  const extra = score
    ? threshold != null
      ? `, with the alert threshold ${threshold} as a dashed line`
      : ", no active model threshold"
    : low != null || high != null
      ? `, expected range ${low ?? "–"} to ${high ?? "–"} as dashed lines`
      : "";
  return (
    <Chart
      label={`${what}: minimum to maximum band and mean per bucket${extra}; alerts shaded red`}
      options={options}
      data={data}
      height={height}
    />
  );
}
