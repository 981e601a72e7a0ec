import { type CompareMetric, type LossBar, fmtCi, fmtDuration } from "../../lib/twin";

// SVG bar charts of the twin's pages: the OEE loss waterfall and the scenarios' side-by-side comparison with
// confidence intervals. Each is an image with a text name; the pages give the table next to it.

const LOSS_COLOR: Record<LossBar["kind"], string> = {
  total: "#495057",
  downtime: "#c92a2a",
  delay: "#8a5a00",
  speed: "#a34100",
  scrap: "#862e9c",
  rework: "#6741d9",
  result: "#237a35",
};

/** Planned busy time, each loss taken off in turn, the fully productive time left: a horizontal waterfall. */
export function LossWaterfall({ bars, label }: { bars: LossBar[]; label: string }) {
  const LABEL_W = 190;
  const W = 640;
  const ROW = 24;
  const total = Math.max(bars[0]?.seconds ?? 0, 1);
  const plot = W - LABEL_W - 90;
  const x = (s: number) => (s / total) * plot;
  return (
    <svg viewBox={`0 0 ${W} ${bars.length * ROW + 8}`} className="lw-chart" role="img" aria-label={label} data-testid="loss-waterfall">
      {bars.map((b, i) => (
        <g key={b.label} transform={`translate(0, ${i * ROW + 4})`}>
          <text x={LABEL_W - 6} y={15} textAnchor="end" fontSize="12" fill="#212529">
            {b.label.length > 30 ? `${b.label.slice(0, 29)}…` : b.label}
          </text>
          <rect x={LABEL_W + x(b.start)} y={3} width={Math.max(x(b.seconds), 1)} height={ROW - 8} fill={LOSS_COLOR[b.kind]} />
          <text x={LABEL_W + x(b.start) + Math.max(x(b.seconds), 1) + 4} y={15} fontSize="11" fill="#212529">
            {fmtDuration(b.seconds)}
            {b.kind !== "total" ? ` (${((b.seconds / total) * 100).toFixed(1)} %)` : ""}
          </text>
        </g>
      ))}
    </svg>
  );
}

export const SCENARIO_COLORS = ["#1864ab", "#a34100", "#237a35", "#862e9c"];
export const SCENARIO_PATTERN = ["solid", "hatched", "dotted", "solid"];

/** One figure per scenario, bars side by side with their confidence interval as whiskers; per machine figures as
 * groups, the bottleneck (of each scenario) marked with ★ beside its name. */
export function CompareChart({ metric, scenarios }: { metric: CompareMetric; scenarios: string[] }) {
  const LABEL_W = 150;
  const W = 560;
  const BAR = 16;
  const groupH = scenarios.length * BAR + 10;
  const max = Math.max(1e-9, ...metric.groups.flatMap((g) => g.bars.flatMap((b) => [b.high ?? b.mean ?? 0, b.mean ?? 0])));
  const plot = W - LABEL_W - 110;
  const x = (v: number) => (Math.max(v, 0) / max) * plot;
  const H = metric.groups.length * groupH + 6;
  const pat = (i: number) => `lw-cmp-${metric.key}-${i}`;
  const summary = metric.groups
    .map((g) => `${g.label}${g.bottleneck?.length ? ` (bottleneck in ${g.bottleneck.join(", ")})` : ""}: ${g.bars.map((b) => `${b.scenario} ${fmtCi(b)} ${metric.unit}`).join("; ")}`)
    .join(". ");
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="lw-chart" role="img" aria-label={`${metric.title} (${metric.unit}), mean and 95 % interval per scenario. ${summary}`} data-testid={`compare-${metric.key}`}>
      <defs>
        {scenarios.map((_, i) => (
          <pattern key={i} id={pat(i)} width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
            <rect width="6" height="6" fill={SCENARIO_COLORS[i % 4]} />
            {SCENARIO_PATTERN[i % 4] === "hatched" && <rect width="2" height="6" fill="rgba(255,255,255,0.5)" />}
            {SCENARIO_PATTERN[i % 4] === "dotted" && <circle cx="3" cy="3" r="1.2" fill="rgba(255,255,255,0.6)" />}
          </pattern>
        ))}
      </defs>
      {metric.groups.map((g, gi) => {
        const y0 = gi * groupH + 4;
        const hot = (g.bottleneck?.length ?? 0) > 0;
        return (
          <g key={g.label} data-testid="compare-group" data-label={g.label} data-bottleneck={hot ? "true" : undefined}>
            {hot && <rect x={0} y={y0 - 2} width={W} height={groupH - 4} fill="#fff4e6" />}
            <text x={LABEL_W - 6} y={y0 + (scenarios.length * BAR) / 2 + 4} textAnchor="end" fontSize="12" fontWeight={hot ? 700 : 400} fill="#212529">
              {hot ? "★ " : ""}
              {g.label.length > 18 ? `${g.label.slice(0, 17)}…` : g.label}
            </text>
            {g.bars.map((b, i) => {
              const y = y0 + i * BAR;
              if (b.mean == null) {
                return (
                  <text key={b.scenario} x={LABEL_W + 4} y={y + 12} fontSize="11" fill="#495057">
                    – (not in {b.scenario})
                  </text>
                );
              }
              const end = LABEL_W + x(b.mean);
              return (
                <g key={b.scenario}>
                  <rect x={LABEL_W} y={y + 2} width={Math.max(end - LABEL_W, 1)} height={BAR - 4} fill={`url(#${pat(scenarios.indexOf(b.scenario))})`} />
                  {b.low != null && b.high != null && (
                    <g stroke="#212529" strokeWidth="1.5">
                      <line x1={LABEL_W + x(b.low)} x2={LABEL_W + x(b.high)} y1={y + BAR / 2} y2={y + BAR / 2} />
                      <line x1={LABEL_W + x(b.low)} x2={LABEL_W + x(b.low)} y1={y + 3} y2={y + BAR - 3} />
                      <line x1={LABEL_W + x(b.high)} x2={LABEL_W + x(b.high)} y1={y + 3} y2={y + BAR - 3} />
                    </g>
                  )}
                  <text x={LABEL_W + x(Math.max(b.high ?? b.mean, b.mean)) + 5} y={y + 12} fontSize="11" fill="#212529">
                    {fmtCi({ ...b, low: null, high: null })}
                  </text>
                </g>
              );
            })}
          </g>
        );
      })}
    </svg>
  );
}

/** The scenarios' colours and patterns, in words too. */
export function ScenarioLegend({ scenarios }: { scenarios: string[] }) {
  return (
    <ul className="lw-legend" aria-label="Scenarios" data-testid="scenario-legend">
      {scenarios.map((s, i) => (
        <li key={s}>
          <svg width="28" height="14" aria-hidden="true">
            <defs>
              <pattern id={`lw-leg-${i}`} width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
                <rect width="6" height="6" fill={SCENARIO_COLORS[i % 4]} />
                {SCENARIO_PATTERN[i % 4] === "hatched" && <rect width="2" height="6" fill="rgba(255,255,255,0.5)" />}
                {SCENARIO_PATTERN[i % 4] === "dotted" && <circle cx="3" cy="3" r="1.2" fill="rgba(255,255,255,0.6)" />}
              </pattern>
            </defs>
            <rect width="28" height="14" fill={`url(#lw-leg-${i})`} />
          </svg>
          {s} ({SCENARIO_PATTERN[i % 4]})
        </li>
      ))}
      <li>
        <svg width="28" height="14" aria-hidden="true">
          <line x1="2" x2="26" y1="7" y2="7" stroke="#212529" strokeWidth="1.5" />
          <line x1="2" x2="2" y1="2" y2="12" stroke="#212529" strokeWidth="1.5" />
          <line x1="26" x2="26" y1="2" y2="12" stroke="#212529" strokeWidth="1.5" />
        </svg>
        95 % confidence interval
      </li>
      <li>★ bottleneck (most often)</li>
    </ul>
  );
}
