import { useId } from "react";
import {
  type BufferState,
  type FlowLayout,
  type FlowNode,
  type LineModel,
  type MachineState,
  STATES,
  STATE_STYLE,
  fmtDuration,
  stateStyle,
} from "../../lib/twin";

/** The patterns drawn over a state's colour (hatched: down and maintenance; dotted: blocked and starved), so states
 * differ without colour too. */
export function StatePatterns({ prefix }: { prefix: string }) {
  return (
    <defs>
      <pattern id={`${prefix}lw-pat-hatch`} width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
        <rect width="3" height="8" fill="rgba(255,255,255,0.35)" />
      </pattern>
      <pattern id={`${prefix}lw-pat-dots`} width="6" height="6" patternUnits="userSpaceOnUse">
        <circle cx="3" cy="3" r="1.2" fill="rgba(255,255,255,0.45)" />
      </pattern>
      <marker id={`${prefix}arrow`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
        <path d="M 0 0 L 10 5 L 0 10 z" fill="#495057" />
      </marker>
      <marker id={`${prefix}arrow-rework`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
        <path d="M 0 0 L 10 5 L 0 10 z" fill="#a34100" />
      </marker>
    </defs>
  );
}

/** The states' legend: colour, pattern, symbol and word. */
export function StateLegend() {
  const prefix = useId().replace(/:/g, "");
  return (
    <ul className="lw-legend" aria-label="Machine states" data-testid="state-legend">
      {[...STATES, "unknown" as const].map((s) => {
        const st = STATE_STYLE[s];
        return (
          <li key={s}>
            <svg width="28" height="16" aria-hidden="true">
              <StatePatterns prefix={prefix} />
              <rect width="28" height="16" rx="3" fill={st.color} />
              {st.pattern && <rect width="28" height="16" rx="3" fill={`url(#${prefix}${st.pattern})`} />}
              <text x="14" y="12" textAnchor="middle" fontSize="11" fill="#fff">
                {st.symbol}
              </text>
            </svg>
            {st.label}
          </li>
        );
      })}
    </ul>
  );
}

function healthText(m: MachineState | undefined): string {
  const h = m?.health;
  if (!h) return "no health data";
  const parts: string[] = [];
  const open = h.open_alerts ?? 0;
  parts.push(open > 0 ? `⚠ ${open} open alert${open > 1 ? "s" : ""}` : "no open alert");
  if (h.rul_low != null) parts.push(`RUL ≥ ${Math.round(h.rul_low)} cycles`);
  else if (h.rul != null) parts.push(`RUL ${Math.round(h.rul)} cycles`);
  else if (h.failure_probability != null) parts.push(`failure risk ${Math.round(h.failure_probability * 100)} %`);
  return parts.join(" · ");
}

/** A machine's state in words (its box's accessible name, the table's cells). */
export function describeMachine(name: string, m: MachineState | undefined, now = Date.now()): string {
  const st = stateStyle(m?.state);
  const since = m?.since ? ` for ${fmtDuration((now - Date.parse(m.since)) / 1000)}` : "";
  const why = m?.reason ? ` (${m.reason})` : "";
  const counts = m ? `, ${m.good ?? 0} good, ${m.defective ?? 0} defective` : "";
  return `${name}: ${st.label}${since}${why}${counts}; ${healthText(m)}`;
}

function MachineBox({ n, m, prefix, href, now, inspects }: { n: FlowNode; m: MachineState | undefined; prefix: string; href: string; now: number; inspects?: string }) {
  const st = stateStyle(m?.state);
  const alerting = (m?.health?.open_alerts ?? 0) > 0;
  const since = m?.since ? fmtDuration((now - Date.parse(m.since)) / 1000) : "";
  return (
    <a href={href} aria-label={describeMachine(n.name, m, now)} data-testid="map-machine" data-machine={n.name} data-state={m?.state ?? "unknown"} className="lw-map-node">
      <title>{describeMachine(n.name, m, now)}</title>
      <rect x={n.x} y={n.y} width={n.w} height={n.h} rx="6" fill="#fff" stroke={st.color} strokeWidth="3" />
      <rect x={n.x} y={n.y} width={n.w} height={24} rx="6" fill={st.color} />
      {st.pattern && <rect x={n.x} y={n.y} width={n.w} height={24} rx="6" fill={`url(#${prefix}${st.pattern})`} />}
      <text x={n.x + 8} y={n.y + 17} fontSize="13" fontWeight="700" fill="#fff">
        {st.symbol} {st.label}
        {since ? ` · ${since}` : ""}
      </text>
      <text x={n.x + 8} y={n.y + 43} fontSize="14" fontWeight="700" fill="#212529">
        {clip(n.name, 22)}
      </text>
      <text x={n.x + 8} y={n.y + 61} fontSize="11.5" fill="#495057">
        {clip(m?.reason ?? (m?.job ? `job ${m.job}` : n.ops.join(", ") + (inspects ? ` · inspects (${inspects})` : "")), 30)}
      </text>
      <text x={n.x + 8} y={n.y + 79} fontSize="12" fill="#212529" data-testid="map-counts">
        ✔ {m?.good ?? 0} good · ✖ {m?.defective ?? 0} defective
      </text>
      <text x={n.x + 8} y={n.y + 99} fontSize="11.5" fontWeight={alerting ? 700 : 400} fill={alerting ? "#c92a2a" : "#495057"} data-testid="map-health">
        {clip(healthText(m), 32)}
      </text>
    </a>
  );
}

function BufferBox({ n, b }: { n: FlowNode; b: BufferState | undefined }) {
  const cap = b?.capacity ?? null;
  const level = b?.level ?? null;
  const share = cap && level != null ? Math.min(level / cap, 1) : 0;
  const full = cap != null && level != null && level >= cap;
  const text = level == null ? "no data" : cap == null ? `${level} (no limit)` : `${level} / ${cap}`;
  const barW = n.w - 16;
  return (
    <g data-testid="map-buffer" data-buffer={n.name} role="img" aria-label={`buffer ${n.name}: ${text}${full ? ", full" : ""}`}>
      <title>{`buffer ${n.name}: ${text}${full ? ", full" : ""}`}</title>
      <rect x={n.x} y={n.y} width={n.w} height={n.h} rx="4" fill="#f8f9fa" stroke="#868e96" strokeDasharray="4 2" />
      <text x={n.x + 8} y={n.y + 18} fontSize="12" fontWeight="600" fill="#212529">
        {clip(n.name, 15)}
      </text>
      <rect x={n.x + 8} y={n.y + 27} width={barW} height={12} rx="2" fill="#dee2e6" />
      <rect x={n.x + 8} y={n.y + 27} width={barW * share} height={12} rx="2" fill={full ? "#a34100" : "#1864ab"} />
      <text x={n.x + 8} y={n.y + 56} fontSize="12" fill="#212529" data-testid="map-buffer-level">
        {text}
        {full ? " full" : ""}
      </text>
    </g>
  );
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The line as a flow of buffers and machines (SVG): machines coloured by their live state, with its symbol and word,
 * their counts and health; buffers with their fill. A machine's box links to its state timeline. */
export function LineMap({
  layout,
  model,
  state,
  machineHref,
  now = Date.now(),
}: {
  layout: FlowLayout;
  model: LineModel;
  state: { machines: MachineState[]; buffers: BufferState[] } | null;
  machineHref: (machine: string) => string;
  now?: number;
}) {
  const prefix = useId().replace(/:/g, "");
  const byId = new Map(layout.nodes.map((n) => [n.id, n]));
  const machines = new Map((state?.machines ?? []).map((m) => [m.machine, m]));
  const buffers = new Map((state?.buffers ?? []).map((b) => [b.buffer, b]));
  return (
    <div className="lw-map-scroll">
      <svg
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        width={layout.width}
        height={layout.height}
        className="lw-map"
        role="group"
        aria-label={`Line map of ${model.name}: ${layout.nodes.filter((n) => n.kind === "machine").length} machines and ${layout.nodes.filter((n) => n.kind === "buffer").length} buffers in flow order`}
        data-testid="line-map"
      >
        <StatePatterns prefix={prefix} />
        <g aria-hidden="true">
          {layout.edges.map((e) => {
            const a = byId.get(e.from);
            const b = byId.get(e.to);
            if (!a || !b) return null;
            if (e.rework) {
              const x1 = a.x + a.w / 2;
              const x2 = b.x + b.w / 2;
              const top = 10;
              return (
                <path
                  key={`${e.from}>${e.to}`}
                  d={`M ${x1} ${a.y} L ${x1} ${top} L ${x2} ${top} L ${x2} ${b.y - 2}`}
                  fill="none"
                  stroke="#a34100"
                  strokeDasharray="6 4"
                  strokeWidth="1.5"
                  markerEnd={`url(#${prefix}arrow-rework)`}
                />
              );
            }
            const x1 = a.x + a.w;
            const y1 = a.y + a.h / 2;
            const x2 = b.x - 2;
            const y2 = b.y + b.h / 2;
            const mx = (x1 + x2) / 2;
            return (
              <path key={`${e.from}>${e.to}`} d={`M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`} fill="none" stroke="#495057" strokeWidth="1.5" markerEnd={`url(#${prefix}arrow)`} />
            );
          })}
          {layout.edges.some((e) => e.rework) && (
            <text x={layout.width - 8} y={24} textAnchor="end" fontSize="11" fill="#a34100">
              dashed: rework
            </text>
          )}
        </g>
        {layout.nodes.map((n) =>
          n.kind === "machine" ? (
            <MachineBox
              key={n.id}
              n={n}
              m={machines.get(n.name)}
              prefix={prefix}
              href={machineHref(n.name)}
              now={now}
              inspects={model.inspections?.find((i) => i.machine === n.name)?.station}
            />
          ) : (
            <BufferBox key={n.id} n={n} b={buffers.get(n.name)} />
          ),
        )}
      </svg>
    </div>
  );
}
