"""Memory bank size against accuracy and the self-check, from one PatchCore per category.

    python benchmarks/vision_bank.py ../shared/data/mvtec_ad/bottle ../shared/data/magnetic_tile/magnetic_tile \
        [--sizes 256,512,1024,2048] [--set max_bank=4096]

The greedy coreset chooses the bank in order, so its first k entries are the bank a k-entry run would have chosen:
one fit per category (the defaults, or ``--set`` parameters), then each size k is scored with the bank's first k
entries, on the real test set (image AUROC, pixel AUROC, AUPRO at model input size) and on the self-check (defects
painted on the held-out good images). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def rows_for(category: Path, sizes: list[int], extra: dict) -> list[dict]:
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.saving import create_detector
    from linewatch.vision.selfcheck import self_check

    ds = load_dataset(category)
    det = create_detector("patchcore", **{"self_check": False, "auto": "off", **extra})  # prefixes of one bank
    started = time.perf_counter()
    det.fit(ds.train)
    fit_s = time.perf_counter() - started
    full = det.memory_bank_.clone()
    _, held = det.split(ds.train)
    rows = []
    for k in sizes:
        if k > full.shape[0]:
            continue
        det.use_bank(full[:k])
        m = evaluate(det, ds)
        check = self_check(det, held, seed=det.params_["seed"])
        rows.append(
            {
                "category": category.name,
                "bank": k,
                "image": m["image_auroc"],
                "pixel": m["pixel_auroc"],
                "aupro": m["aupro"],
                "self_image": check.image_auroc,
                "self_pixel": check.pixel_auroc,
                "ms_per_image": m["ms_per_image"],
                "fit_s": round(fit_s, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("categories", nargs="+", type=Path)
    ap.add_argument("--sizes", default="256,512,1024,2048")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = [r for cat in args.categories for r in rows_for(cat, sizes, parse_set(args.set))]
    cols = ["category", "bank", "image", "pixel", "aupro", "self_image", "self_pixel", "ms_per_image", "fit_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) and c in cols[2:7] else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
