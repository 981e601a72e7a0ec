import { useElementSize } from "@mantine/hooks";
import { useId, useState } from "react";
import { type Segment, describeSegment, fmtClock, stateStyle } from "../../lib/twin";
import { StatePatterns } from "./LineMap";

const ROW = 30;
const AXIS = 22;
const LABEL_W = 120;

function ticks(from: number, to: number, px: number): number[] {
  const span = to - from;
  const steps = [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 2 * 3_600_000, 4 * 3_600_000, 6 * 3_600_000, 12 * 3_600_000, 86_400_000, 2 * 86_400_000];
  const want = span / Math.max(px / 110, 1);
  const step = steps.find((s) => s >= want) ?? steps[steps.length - 1];
  const out: number[] = [];
  const tz = new Date(from).getTimezoneOffset() * 60_000;
  for (let t = Math.ceil((from - tz) / step) * step + tz; t <= to; t += step) out.push(t);
  return out;
}

/** Machines × time as an SVG swimlane: each state a bar in its colour and pattern; hover a bar (or focus the chart
 * and move with the arrow keys) for what it is. The table next to it is the same in text. */
export function StateTimeline({ rows, from, to, label }: { rows: [string, Segment[]][]; from: number; to: number; label: string }) {
  const { ref, width } = useElementSize();
  const prefix = useId().replace(/:/g, "");
  const plotW = Math.max((width || 800) - LABEL_W - 8, 100);
  const height = rows.length * ROW + AXIS;
  const x = (t: number) => ((t - from) / Math.max(to - from, 1)) * plotW;
  const [hover, setHover] = useState<{ seg: Segment; left: number; top: number } | null>(null);
  const [focus, setFocus] = useState<[number, number] | null>(null);
  const focused = focus ? rows[focus[0]]?.[1][focus[1]] : undefined;
  const shown = hover?.seg ?? focused;

  function onKey(e: React.KeyboardEvent) {
    if (!["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].includes(e.key)) return;
    e.preventDefault();
    setHover(null);
    setFocus((f) => {
      const [r, c] = f ?? [0, 0];
      if (!f) return rows.length ? [0, 0] : null;
      const row = rows[r][1];
      if (e.key === "ArrowRight") return [r, Math.min(c + 1, row.length - 1)];
      if (e.key === "ArrowLeft") return [r, Math.max(c - 1, 0)];
      if (e.key === "Home") return [r, 0];
      if (e.key === "End") return [r, row.length - 1];
      const nr = Math.max(0, Math.min(rows.length - 1, r + (e.key === "ArrowDown" ? 1 : -1)));
      const t = row[c]?.start ?? from;
      const next = rows[nr][1];
      const nc = Math.max(0, next.findIndex((s) => s.end > t));
      return [nr, nc];
    });
  }

  return (
    <div ref={ref} className="lw-timeline" data-testid="state-timeline">
      <div
        role="application"
        aria-roledescription="state timeline"
        aria-label={`${label}. Arrow keys move between states: left and right along a machine, up and down across machines.`}
        tabIndex={0}
        className="lw-gantt lw-timeline-body"
        onKeyDown={onKey}
        onFocus={() => setFocus((f) => f ?? (rows.length ? [0, 0] : null))}
        onBlur={() => setFocus(null)}
      >
        <svg width={LABEL_W + plotW} height={height} aria-hidden="true">
          <StatePatterns prefix={prefix} />
          {ticks(from, to, plotW).map((t) => (
            <g key={t}>
              <line x1={LABEL_W + x(t)} x2={LABEL_W + x(t)} y1={0} y2={height - AXIS} stroke="#e9ecef" />
              <text x={LABEL_W + x(t) + 2} y={height - 6} fontSize="11" fill="#495057">
                {fmtClock(t).slice(to - from > 86_400_000 ? 5 : 11)}
              </text>
            </g>
          ))}
          {rows.map(([machine, segs], r) => (
            <g key={machine} transform={`translate(0, ${r * ROW})`}>
              <text x={0} y={ROW / 2 + 4} fontSize="12" fill="#212529">
                {machine.length > 17 ? `${machine.slice(0, 16)}…` : machine}
              </text>
              {segs.map((s, c) => {
                const st = stateStyle(s.state);
                const x0 = LABEL_W + x(s.start);
                const w = Math.max(x(s.end) - x(s.start), 0.5);
                const isFocus = focus?.[0] === r && focus?.[1] === c;
                return (
                  <g
                    key={s.start}
                    data-testid="timeline-segment"
                    data-state={s.state}
                    onMouseMove={(e) => {
                      const box = (e.currentTarget.ownerSVGElement as SVGSVGElement).getBoundingClientRect();
                      setHover({ seg: s, left: e.clientX - box.left, top: e.clientY - box.top });
                    }}
                    onMouseLeave={() => setHover(null)}
                  >
                    <rect x={x0} y={4} width={w} height={ROW - 8} fill={st.color} />
                    {st.pattern && <rect x={x0} y={4} width={w} height={ROW - 8} fill={`url(#${prefix}${st.pattern})`} />}
                    {isFocus && <rect x={x0 - 2} y={2} width={w + 4} height={ROW - 4} fill="none" stroke="#1864ab" strokeWidth="3" />}
                  </g>
                );
              })}
            </g>
          ))}
        </svg>
      </div>
      {shown && (
        <div
          className="lw-gantt-tip"
          data-testid="timeline-tip"
          style={{
            left: Math.min(hover ? hover.left + 12 : LABEL_W + x(shown.start), Math.max((width || 800) - 260, 0)),
            top: hover ? hover.top + 12 : (focus?.[0] ?? 0) * ROW + ROW + 2,
          }}
        >
          {describeSegment(shown)}
        </div>
      )}
      <div aria-live="polite" className="lw-sr-only" data-testid="timeline-focus">
        {focused ? describeSegment(focused) : ""}
      </div>
    </div>
  );
}
