import type { Inspection } from "../api/client";

// one column per field; the review's are the latest review (what counts), the model's verdict stays as it was
const COLUMNS: [string, (x: Inspection) => unknown][] = [
  ["id", (x) => x.id],
  ["created_at", (x) => x.created_at],
  ["station", (x) => x.station],
  ["filename", (x) => x.filename],
  ["verdict", (x) => x.verdict],
  ["score", (x) => x.score],
  ["normalized_score", (x) => x.normalized_score],
  ["model_id", (x) => x.model_id],
  ["reviewed", (x) => x.reviewed],
  ["review_verdict", (x) => x.review_verdict],
  ["defect_type", (x) => x.defect_type],
  ["review_note", (x) => x.review?.note],
  ["reviewer", (x) => x.review?.reviewer],
  ["reviewed_at", (x) => x.review?.created_at],
  ["repeat_of", (x) => x.duplicate_of],
  ["latency_ms", (x) => x.latency_ms],
  ["width", (x) => x.width],
  ["height", (x) => x.height],
  ["regions", (x) => x.regions.length],
];

function cell(v: unknown): string {
  const s = v === null || v === undefined ? "" : String(v);
  // quote what needs it; a leading =, +, - or @ would be a formula in a spreadsheet
  const safe = /^[=+\-@]/.test(s) && Number.isNaN(Number(s)) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function toCsv(items: Inspection[]): string {
  const rows = [COLUMNS.map(([name]) => name).join(","), ...items.map((x) => COLUMNS.map(([, get]) => cell(get(x))).join(","))];
  return rows.join("\r\n") + "\r\n";
}

export function download(name: string, text: BlobPart, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
