import type { LineModel } from "../lib/twin";

// the library's example (src/linewatch/twin/examples/bottling.yaml), trimmed
export const BOTTLING: LineModel = {
  name: "bottling",
  timezone: "Europe/Berlin",
  shifts: [
    { name: "early", start: "06:00", end: "14:00", days: ["mon", "tue", "wed", "thu", "fri"] },
    { name: "late", start: "14:00", end: "22:00", days: ["mon", "tue", "wed", "thu", "fri"] },
  ],
  machines: [
    { name: "depalletiser", operation: "depalletise", cycle_time_s: 5, failures: [{ cause: "layer misaligned", mtbf_h: 20, mttr_min: 6 }] },
    {
      name: "filler",
      operations: [
        { name: "fill_cola", cycle_time_s: { dist: "normal", mean: 6, sd: 0.3 } },
        { name: "fill_water", cycle_time_s: { dist: "normal", mean: 5.2, sd: 0.3 } },
      ],
      failures: [
        { cause: "valve jam", mtbf_h: 4, mttr_min: 8 },
        { cause: "leak", time_to_failure_h: { dist: "weibull", shape: 1.5, scale: 30 }, time_to_repair_min: { dist: "lognormal", mean: 25, cv: 0.5 } },
      ],
    },
    { name: "capper", operation: "cap", cycle_time_s: 5.5, failures: [{ cause: "cap chute jam", mtbf_h: 6, mttr_min: 5 }] },
    { name: "inspector", operation: "inspect", cycle_time_s: 4 },
    { name: "packer", operation: "pack", cycle_time_s: 5 },
  ],
  buffers: [
    { name: "infeed cola", before: "fill_cola", capacity: 30 },
    { name: "infeed water", before: "fill_water", capacity: 30 },
    { name: "capper infeed", before: "cap", capacity: 20 },
    { name: "accumulation table", before: "pack", capacity: 60 },
  ],
  inspections: [{ machine: "inspector", station: "bottle-camera", defect_rate: 0.015, rework_fraction: 0.4, rework_to: "cap" }],
  products: [
    { name: "cola", mix: 0.6, routing: ["depalletise", "fill_cola", "cap", "inspect", "pack"] },
    { name: "water", mix: 0.4, routing: ["depalletise", "fill_water", "cap", "inspect", "pack"] },
  ],
};

