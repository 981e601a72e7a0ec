import { useMemo } from "react";
import type uPlot from "uplot";
import type { ScheduleProgressEvent } from "../lib/schedules";
import { Chart } from "./Chart";

/** The solver's incumbent (the best plan's objective) and proven bound over the seconds it ran. */
export function ConvergenceChart({ points, objective }: { points: ScheduleProgressEvent[]; objective: string }) {
  const options = useMemo<Omit<uPlot.Options, "width" | "height">>(
    () => ({
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
      axes: [{ label: "seconds" }, { size: 60, label: objective }],
      series: [
        { value: (_u, v) => (v == null ? "–" : `${v.toFixed(1)} s`) },
        { label: "incumbent", stroke: "#1864ab", width: 2, paths: undefined, points: { show: true, size: 4 } },
        { label: "bound", stroke: "#2b8a3e", width: 2, dash: [6, 4], points: { show: false } },
      ],
    }),
    [objective],
  );
  const data = useMemo<uPlot.AlignedData>(
    () => [points.map((p) => p.elapsed_s), points.map((p) => p.value), points.map((p) => p.bound ?? null)],
    [points],
  );
  return <Chart label={`Solver convergence: the incumbent ${objective} and its proven bound over the seconds solved`} options={options} data={data} height={160} />;
}
