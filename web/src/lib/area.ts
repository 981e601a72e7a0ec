/** The inspection area drawn in the browser: boxes the model ignores, in fractions of the photo (0 to 1), turned into
 * the mask the service takes (white inspected, black ignored, at the photo's own size). */

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

const clamp = (v: number) => Math.min(1, Math.max(0, v));

/** The box a drag from (x0, y0) to (x1, y1) marks, in pixels of a picture shown ``width`` x ``height``: as fractions
 * of it, whichever way the drag went, cut to the picture; null for a click or a sliver (under 1 % of a side). */
export function boxFromDrag(x0: number, y0: number, x1: number, y1: number, width: number, height: number): Box | null {
  const a = { x: clamp(Math.min(x0, x1) / width), y: clamp(Math.min(y0, y1) / height) };
  const b = { x: clamp(Math.max(x0, x1) / width), y: clamp(Math.max(y0, y1) / height) };
  const box = { x: a.x, y: a.y, w: b.x - a.x, h: b.y - a.y };
  return box.w < 0.01 || box.h < 0.01 ? null : box;
}

/** The share of the photo the boxes leave inspected (their union counted once), on a 200 x 200 grid. */
export function inspectedShare(boxes: Box[]): number {
  const n = 200;
  const ignored = new Uint8Array(n * n);
  for (const b of boxes) {
    const x0 = Math.floor(b.x * n);
    const x1 = Math.ceil((b.x + b.w) * n);
    const y0 = Math.floor(b.y * n);
    const y1 = Math.ceil((b.y + b.h) * n);
    for (let y = y0; y < Math.min(n, y1); y++) ignored.fill(1, y * n + x0, y * n + Math.min(n, x1));
  }
  return 1 - ignored.reduce((s, v) => s + v, 0) / (n * n);
}

/** The boxes in pixels of a photo ``width`` x ``height`` (whole pixels, each covering at least one). */
export function pixelBoxes(boxes: Box[], width: number, height: number): Box[] {
  return boxes.map((b) => {
    const x = Math.floor(b.x * width);
    const y = Math.floor(b.y * height);
    return { x, y, w: Math.max(1, Math.ceil((b.x + b.w) * width) - x), h: Math.max(1, Math.ceil((b.y + b.h) * height) - y) };
  });
}

/** The mask as a PNG blob: the photo's size, white, the boxes black. */
export async function maskPng(boxes: Box[], width: number, height: number): Promise<Blob> {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  if (!g) throw new Error("This browser cannot draw the mask: upload a mask image instead.");
  g.fillStyle = "#ffffff";
  g.fillRect(0, 0, width, height);
  g.fillStyle = "#000000";
  for (const b of pixelBoxes(boxes, width, height)) g.fillRect(b.x, b.y, b.w, b.h);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("The mask could not be made: upload a mask image instead."))), "image/png"),
  );
}

/** A photo's own width and height, as the browser shows it. */
export function photoSize(file: Blob): Promise<{ width: number; height: number }> {
  return new Promise((resolve, reject) => {
    const u = URL.createObjectURL(file);
    const im = new Image();
    im.onload = () => {
      URL.revokeObjectURL(u);
      resolve({ width: im.naturalWidth, height: im.naturalHeight });
    };
    im.onerror = () => {
      URL.revokeObjectURL(u);
      reject(new Error("This photo cannot be shown in the browser to draw on: upload a mask image instead."));
    };
    im.src = u;
  });
}

/** The share of each photo a model version inspects, from its training figures; null: the whole photo. */
export function areaOf(metrics: unknown): number | null {
  const training = (metrics as { training?: { inspect_area?: { inspected?: unknown } } } | null)?.training;
  const v = training?.inspect_area?.inspected;
  return typeof v === "number" ? v : null;
}
