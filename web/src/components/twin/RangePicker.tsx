import { Button, Group, SegmentedControl, TextInput } from "@mantine/core";
import { useState } from "react";
import { fromLocalInput, toLocalInput } from "../../lib/format";
import { type LineModel, lastShift } from "../../lib/twin";

export type Preset = "shift" | "1h" | "8h" | "24h" | "7d" | "custom";
export interface Range {
  preset: Preset;
  from: number;
  to: number;
  label: string;
}

const HOUR = 3_600_000;

export function presetRange(preset: Preset, model: LineModel, now = Date.now()): Range {
  if (preset === "shift") {
    const s = lastShift(model.shifts, model.timezone, now);
    return { preset, from: s.from, to: s.to, label: model.shifts?.length ? `shift ${s.name}` : s.name };
  }
  const hours = { "1h": 1, "8h": 8, "24h": 24, "7d": 168, custom: 8 }[preset];
  return { preset, from: now - hours * HOUR, to: now, label: { "1h": "last hour", "8h": "last 8 h", "24h": "last 24 h", "7d": "last 7 days", custom: "" }[preset] };
}

/** Presets (the last shift of the line's calendar, 24 h, 7 days, ...) or a custom range in local time. */
export function RangePicker({ range, onChange, model, presets }: { range: Range; onChange: (r: Range) => void; model: LineModel; presets: Preset[] }) {
  const [from, setFrom] = useState(toLocalInput(range.from));
  const [to, setTo] = useState(toLocalInput(range.to));
  const [error, setError] = useState<string | null>(null);
  const labels: Record<Preset, string> = { shift: "Last shift", "1h": "1 h", "8h": "8 h", "24h": "24 h", "7d": "7 days", custom: "Custom" };
  return (
    <Group align="flex-end" gap="sm" data-testid="range-picker">
      <SegmentedControl
        aria-label="Time range"
        data={[...presets, "custom" as const].map((p) => ({ value: p, label: labels[p] }))}
        value={range.preset}
        onChange={(v) => {
          if (v === "custom") {
            setFrom(toLocalInput(range.from));
            setTo(toLocalInput(range.to));
            onChange({ ...range, preset: "custom", label: "custom range" });
          } else onChange(presetRange(v as Preset, model));
        }}
      />
      {range.preset === "custom" && (
        <Group
          align="flex-end"
          gap="xs"
          component="form"
          onSubmit={(e: React.FormEvent) => {
            e.preventDefault();
            const a = fromLocalInput(from);
            const b = fromLocalInput(to);
            if (!(a < b)) return setError("The start must be before the end.");
            setError(null);
            onChange({ preset: "custom", from: a, to: b, label: "custom range" });
          }}
        >
          <TextInput type="datetime-local" label="From" value={from} onChange={(e) => setFrom(e.currentTarget.value)} error={error} data-testid="range-from" />
          <TextInput type="datetime-local" label="To" value={to} onChange={(e) => setTo(e.currentTarget.value)} data-testid="range-to" />
          <Button type="submit" variant="default">
            Show
          </Button>
        </Group>
      )}
    </Group>
  );
}
