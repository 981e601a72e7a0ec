import { useMemo } from "react";
import type uPlot from "uplot";
import { fmtDateTime } from "../lib/format";
import { type MaintenancePoint, type Rule, type Unit, inUnit, thresholdIn } from "../lib/maintenance";
import { Chart } from "./Chart";

/** uPlot's aligned data: x, then high, low and RUL in the unit (a RUL model), or the failure probability. */
export function maintenanceData(points: MaintenancePoint[], rule: Rule, unit: Unit): uPlot.AlignedData {
  const x = points.map((p) => Date.parse(p.time) / 1000);
  if (rule.target === "failure") return [x, points.map((p) => p.failure_probability ?? null)];
  const f = (v: number | null | undefined) => (v == null ? null : inUnit(v, unit, rule.cycle_s));
  return [x, points.map((p) => f(p.rul_high)), points.map((p) => f(p.rul_low)), points.map((p) => f(p.rul))];
}

function hLine(u: uPlot, y: number) {
  const ctx = u.ctx;
  const py = u.valToPos(y, "y", true);
  if (py < u.bbox.top || py > u.bbox.top + u.bbox.height) return;
  ctx.save();
  ctx.strokeStyle = "#c92a2a";
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(u.bbox.left, py);
  ctx.lineTo(u.bbox.left + u.bbox.width, py);
  ctx.stroke();
  ctx.restore();
}

/** RUL over time with its interval as a band and the alert threshold as a dashed red line; or the failure
 * probability over time with its alert level. */
export function MaintenanceChart({ points, rule, unit, height = 200 }: { points: MaintenancePoint[]; rule: Rule; unit: Unit; height?: number }) {
  const failure = rule.target === "failure";
  const line = failure ? rule.alert_above : thresholdIn(rule, unit);
  const options = useMemo<Omit<uPlot.Options, "width" | "height">>(() => {
    const fmt = (_u: uPlot, v: number | null) => (v == null ? "–" : failure ? v.toFixed(3) : v.toPrecision(4));
    return {
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: {
          range: (_u, min, max) => {
            if (failure) return [0, 1];
            const hi = Math.max(max ?? 1, line ?? 0) * 1.08 || 1;
            return [Math.min(0, min ?? 0), hi];
          },
        },
      },
      axes: [{}, { size: 60, label: failure ? "probability" : unit }],
      series: failure
        ? [
            { value: (_u, v) => (v == null ? "–" : fmtDateTime(new Date(v * 1000).toISOString())) },
            { label: "failure probability", stroke: "#c92a2a", width: 2, points: { show: false }, value: fmt },
          ]
        : [
            { value: (_u, v) => (v == null ? "–" : fmtDateTime(new Date(v * 1000).toISOString())) },
            { label: "high", stroke: "transparent", points: { show: false }, value: fmt },
            { label: "low", stroke: "transparent", points: { show: false }, value: fmt },
            { label: `RUL (${unit})`, stroke: "#1864ab", width: 2, points: { show: false }, value: fmt },
          ],
      bands: failure ? [] : [{ series: [1, 2], fill: "rgba(28,126,214,0.22)" }],
      plugins: [{ hooks: { draw: (u) => line != null && hLine(u, line) } }],
    };
  }, [failure, line, unit]);
  const data = useMemo(() => maintenanceData(points, rule, unit), [points, rule, unit]);
  const label = failure
    ? `Failure probability over time${line != null ? `, the alert level ${line} as a dashed red line` : ""}`
    : `Remaining useful life in ${unit} over time: the prediction as a line, its interval as a band${line != null ? `, the alert threshold ${Number(line.toPrecision(4))} ${unit} as a dashed red line` : ""}`;
  return <Chart label={label} options={options} data={data} height={height} />;
}
