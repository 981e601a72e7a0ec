// One time format everywhere: local time, 24 h, year-month-day (2026-12-03 07:30:12); a list of today's parts shows
// the time of day alone, a narrow card drops the seconds.
const pad = (n: number) => String(n).padStart(2, "0");

export function fmtTime(iso: string): string {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDateTime(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(iso)}`;
}

export function fmtNum(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits);
}

export function fmtPct(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : `${(v * 100).toFixed(digits)} %`;
}

/** How sure the verdict is: distance of the normalised score from the threshold (0.5). */
export function uncertainty(normalized: number): number {
  return Math.abs(normalized - 0.5);
}

/** Short: "2026-11-23 16:33" (a narrow card's date and time). */
export function fmtShort(iso: string): string {
  return fmtDateTime(iso).slice(0, 16);
}

/** A model's name without the " #N" (the training job) a default name ends with: pages show the version number
 * beside it, and "#5 good parts #3" reads as two versions. */
export function modelName(name: string): string {
  return name.replace(/ #\d+$/, "");
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/** A `datetime-local` input's value (local time, to the minute) for an instant in ms since the epoch. */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** A `datetime-local` input's value back to ms since the epoch: NaN when empty or not a time. */
export function fromLocalInput(value: string): number {
  return value ? new Date(value).getTime() : NaN;
}
