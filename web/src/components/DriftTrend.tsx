import { SimpleGrid, Text } from "@mantine/core";
import { useMemo } from "react";
import type uPlot from "uplot";
import type { Schemas } from "../api/client";
import { fmtDateTime } from "../lib/format";
import { Chart } from "./Chart";

type Drift = Schemas["StationDriftOut"];
export type TrendFigure = "score" | "brightness" | "look";

export const FIGURES: { key: TrendFigure; label: string; hint: string }[] = [
  { key: "score", label: "score", hint: "median raw score" },
  { key: "brightness", label: "brightness", hint: "median brightness of the photos (0 to 1)" },
  { key: "look", label: "look", hint: "median distance of the photos to the nearest good photo kept" },
];

/** The x of each group: the recent parts counted up to its newest one, oldest first (parts, not time: a batch of
 * photos shares one second, a quiet night spans hours). */
export function trendX(d: Drift): number[] {
  let n = 0;
  return d.trend.map((w) => (n += w.parts));
}

/** uPlot's aligned data of one figure: x (``trendX``), the recent groups' medians, then the reference's 5th and 95th
 * percentiles as flat lines (null where the reference keeps none). */
export function trendData(d: Drift, key: TrendFigure): uPlot.AlignedData {
  const x = trendX(d);
  const band = d.reference_band?.[key] ?? null;
  const flat = (v: number | null) => x.map(() => v);
  return [x, d.trend.map((w) => w[key] ?? null), flat(band ? band[0] : null), flat(band ? band[2] : null)];
}

/** The figures a trend has: those with at least one group's median. */
export function trendFigures(d: Drift): TrendFigure[] {
  return FIGURES.map((f) => f.key).filter((k) => d.trend.some((w) => w[k] != null));
}

function FigureChart({ drift, figure }: { drift: Drift; figure: (typeof FIGURES)[number] }) {
  const data = useMemo(() => trendData(drift, figure.key), [drift, figure.key]);
  const options = useMemo<Omit<uPlot.Options, "width" | "height">>(() => {
    const fmt = (_u: uPlot, v: number | null) => (v == null ? "–" : v.toPrecision(3));
    const band = { stroke: "#868e96", dash: [5, 4], width: 1, points: { show: false }, value: fmt };
    const until = new Map(trendX(drift).map((x, i) => [x, drift.trend[i].until]));
    return {
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
      axes: [{ label: "recent parts, oldest first", labelSize: 18, size: 36 }, { size: 50 }],
      series: [
        { label: "until", value: (_u, v) => (v == null || !until.has(v) ? "–" : fmtDateTime(until.get(v)!)) },
        { label: figure.label, stroke: "#1864ab", width: 2, points: { show: true, size: 4 }, value: fmt },
        { label: "good 5 %", ...band },
        { label: "good 95 %", ...band },
      ],
    };
  }, [drift, figure.label]);
  return (
    <div>
      <Text size="xs" c="gray.8">
        {figure.hint}
      </Text>
      <Chart label={`${figure.label} of the recent parts against the good ones`} options={options} data={data} height={130} />
    </div>
  );
}

/** When something moved: the station's recent parts in consecutive groups, each figure's median over time against
 * the band (5th to 95th percentile) of the good photos the thresholds were set on. */
export function DriftTrend({ drift }: { drift: Drift }) {
  const shown = trendFigures(drift);
  if (drift.trend.length < 2 || shown.length === 0) return null;
  return (
    <SimpleGrid cols={{ base: 1, md: shown.length }} spacing="xs" mt="xs" data-testid="drift-trend">
      {FIGURES.filter((f) => shown.includes(f.key)).map((f) => (
        <FigureChart key={f.key} drift={drift} figure={f} />
      ))}
    </SimpleGrid>
  );
}
