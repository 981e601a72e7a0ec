import type { Inspection } from "../api/client";

const COLUMNS: (keyof Inspection)[] = [
  "id",
  "created_at",
  "station",
  "filename",
  "verdict",
  "score",
  "normalized_score",
  "model_id",
  "reviewed",
  "latency_ms",
  "width",
  "height",
];

function cell(v: unknown): string {
  const s = v === null || v === undefined ? "" : String(v);
  // quote what needs it; a leading =, +, - or @ would be a formula in a spreadsheet
  const safe = /^[=+\-@]/.test(s) && Number.isNaN(Number(s)) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function toCsv(items: Inspection[]): string {
  const rows = [COLUMNS.join(","), ...items.map((x) => [...COLUMNS.map((c) => cell(x[c])), String(x.regions.length)].join(","))];
  rows[0] += ",regions";
  return rows.join("\r\n") + "\r\n";
}

export function download(name: string, text: string, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
