"""Defect search retrieval quality: leave-one-out defect-type precision@5 on a category's defective test images,
region embeddings against whole-image embeddings, from one scoring pass per image.

    python benchmarks/search_retrieval.py /work/shared/data/mvtec_ad/bottle [--model MODEL_DIR]
    python benchmarks/search_retrieval.py --synthetic            # the project's generator (scratch/spot/chip)

Without --model a PatchCore is trained with the defaults on the category's train/good images. Every defective
test image is a query; its 5 nearest other defective images (by the best region-to-region cosine similarity, or
by image embedding) are hits when they share its defect type. Chance is the mean share of same-type others.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from linewatch.vision.datasets import load_dataset
from linewatch.vision.embeddings import DEFAULT_REGION_MODE, REGION_MODES, embed
from linewatch.vision.regions import find_components


def grids_of(det, paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(input map, features grid, residuals grid) per image, from the detector's scoring pass."""
    out = []
    for _scores, maps, _sizes, _names, grids in det._raw_batches(paths, None, "score", grids=True):
        out += [(m, f, r) for m, (f, r) in zip(maps, grids, strict=True)]
    return out


def vectors(det, raw, mode: str, max_regions: int | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Per image: its defect vectors (regions, or the peak when none), and the whole-image vectors."""
    thr = det.calibration_.pixel_threshold
    defects, images = [], []
    for amap, f, r in raw:
        _regions, labels, comps = find_components(amap, thr, det.min_region_area)
        e = embed(f, r, amap, labels, comps, thr, det.residual_layers, mode)
        d = e.defects()
        defects.append(d[:max_regions] if max_regions else d)
        images.append(e.image)
    return defects, np.stack(images)


def precision_at_5(sim: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim, axis=1)[:, :k]
    return float((labels[top] == labels[:, None]).mean())


def region_similarity(defects: list[np.ndarray]) -> np.ndarray:
    """Image-to-image similarity: the best cosine similarity over pairs of their defect vectors."""
    allv = np.concatenate(defects)
    owner = np.repeat(np.arange(len(defects)), [len(d) for d in defects])
    s = allv @ allv.T
    n = len(defects)
    best = np.full((n, n), -np.inf, dtype=np.float32)
    for i in range(n):
        rows = s[owner == i]  # (ri, total)
        col_best = rows.max(0)
        np.maximum.at(best[i], owner, col_best)
    return best


def evaluate(det, samples, name: str) -> list[dict]:
    paths = [s.path for s in samples]
    labels = np.array([s.label for s in samples])
    started = time.perf_counter()
    raw = grids_of(det, paths)
    secs = time.perf_counter() - started
    chance = float(np.mean([(labels == lab).sum() - 1 for lab in labels]) / (len(labels) - 1))
    rows = []
    _, images = vectors(det, raw, REGION_MODES[0], None)
    whole = precision_at_5(images @ images.T, labels)
    rows.append({"data": name, "embedding": "whole image (mean of features)", "p@5": whole})
    for mode in REGION_MODES:
        for cap in (None, 1):
            defects, _ = vectors(det, raw, mode, cap)
            which = "all regions" if cap is None else "top region only"
            default = " (default)" if mode == DEFAULT_REGION_MODE and cap is None else ""
            rows.append(
                {
                    "data": name,
                    "embedding": f"region: {mode}, {which}{default}",
                    "p@5": precision_at_5(region_similarity(defects), labels),
                }
            )
    for r in rows:
        r.update(images=len(labels), chance=round(chance, 3), scoring_s=round(secs, 1))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", type=Path, help="MVTec-layout category")
    ap.add_argument("--model", type=Path, help="trained model dir (default: train one with the defaults)")
    ap.add_argument("--synthetic", action="store_true", help="also (or only) the synthetic generator's defects")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import load
    from linewatch.vision.synthetic import make_dataset

    rows = []
    if args.data:
        ds = load_dataset(args.data)
        det = load(args.model) if args.model else PatchCore().fit(ds.train)
        rows += evaluate(det, [s for s in ds.test if s.is_anomalous], args.data.name)
    if args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            root = make_dataset(Path(tmp) / "washer", n_train=40, n_test_good=0, n_test_defect=20, seed=1)
            ds = load_dataset(root)
            det = PatchCore().fit(ds.train)
            rows += evaluate(det, [s for s in ds.test if s.is_anomalous], "synthetic")
    if args.json:
        print(json.dumps(rows))
        return
    print("| data | images | embedding | precision@5 | chance |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['images']} | {r['embedding']} | {r['p@5']:.3f} | {r['chance']:.3f} |")


if __name__ == "__main__":
    main()
