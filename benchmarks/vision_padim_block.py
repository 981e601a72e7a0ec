"""PaDiM with one covariance per block of patch positions, alone and added to PatchCore's image score.

    python benchmarks/vision_padim_block.py ../shared/data/mvtec_ad/bottle ../shared/data/magnetic_tile/magnetic_tile \
        [--blocks 1,2,4,8] [--patchcore bottle=MODEL --patchcore magnetic_tile=MODEL] [--synthetic]

One PaDiM fit per category and ``cov_block``, each calibrated on the same held-out good images and scored on the real
test set: image AUROC, pixel AUROC and AUPRO at model input size, and the PyTorch graph's median time for one
image (backbone included, the machine otherwise idle). With a saved PatchCore model for the category, the image AUROC
of the two scores added, each over its own image threshold (``--method combined``'s rule), is printed too.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def scored(model, ds) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per-image scores, labels and the test-set metrics of ``model`` (as ``evaluate`` computes them)."""
    from linewatch.vision.images import load_mask
    from linewatch.vision.metrics import aupro, auroc

    pre = model.preprocess
    samples = ds.test
    n = len(samples)
    scores = np.zeros(n)
    maps = np.zeros((n, *pre.input_hw), dtype=np.float32)
    masks = np.zeros((n, *pre.input_hw), dtype=bool)
    for i, (score, amap, (w, h), _name) in enumerate(model.raw_scores([x.path for x in samples])):
        scores[i], maps[i] = score, amap
        if samples[i].is_anomalous and samples[i].mask_path:
            masks[i] = pre.mask_to_input(load_mask(samples[i].mask_path, w, h))
    labels = np.array([x.is_anomalous for x in samples])
    metrics = {"image": auroc(labels, scores), "pixel": auroc(masks, maps), "aupro": aupro(masks, maps)}
    return scores, labels, metrics


def graph_ms(det, repeats: int = 15) -> float:
    import torch

    x = torch.randn(1, 3, *det.preprocess.input_hw)
    graph = det.graph()
    times = []
    with torch.inference_mode():
        graph(x)
        for _ in range(repeats):
            t = time.perf_counter()
            graph(x)
            times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def rows_for(category: Path, blocks: list[int], patchcore: str | None, n_features: int) -> list[dict]:
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.metrics import auroc
    from linewatch.vision.padim import Padim
    from linewatch.vision.saving import load

    ds = load_dataset(category)
    pc = None
    if patchcore:
        pc = load(patchcore)
        pc_scores, labels, pc_m = scored(pc, ds)
        pc_thr = pc.calibration_.image_threshold
    rows = []
    if pc is not None:
        rows.append({"category": category.name, "model": "PatchCore", **pc_m, "combined": float("nan")})
    for block in blocks:
        det = Padim(self_check=False, n_features=n_features, cov_block=block)
        started = time.perf_counter()
        det.fit(ds.train)
        fit_s = time.perf_counter() - started
        scores, labels, m = scored(det, ds)
        combined = float("nan")
        if pc is not None:
            combined = auroc(labels, pc_scores / pc_thr + scores / det.calibration_.image_threshold)
        rows.append(
            {
                "category": category.name,
                "model": f"PaDiM, block {det._graph.block}",
                **m,
                "combined": combined,
                "graph_ms": graph_ms(det),
                "cov_mb": det.inv_cov_.numel() * 4 / 1e6,
                "fit_s": fit_s,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("categories", nargs="*", type=Path)
    ap.add_argument("--blocks", default="1,2,4,8")
    ap.add_argument("--patchcore", action="append", default=[], help="CATEGORY=MODEL_DIR, a saved PatchCore model")
    ap.add_argument("--n-features", type=int, default=100)
    ap.add_argument("--synthetic", action="store_true", help="also the generated category (seed 1)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    blocks = [int(b) for b in args.blocks.split(",")]
    models = dict(item.split("=", 1) for item in args.patchcore)
    cats = list(args.categories)
    tmp = None
    if args.synthetic:
        from linewatch.vision.synthetic import make_dataset

        tmp = tempfile.TemporaryDirectory()
        cats.append(make_dataset(Path(tmp.name) / "synthetic", n_test_good=10, n_test_defect=10, seed=1))
    rows = []
    for cat in cats:
        rows += rows_for(cat, blocks, models.get(cat.name), args.n_features)
    print()
    print("| category | model | image AUROC | pixel AUROC | AUPRO | + PatchCore image | graph ms | covariances MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['category']} | {r['model']} | {r['image']:.4f} | {r['pixel']:.4f} | {r['aupro']:.4f} | "
            f"{r['combined']:.4f} | {r.get('graph_ms', float('nan')):.1f} | {r.get('cov_mb', float('nan')):.0f} |"
        )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
