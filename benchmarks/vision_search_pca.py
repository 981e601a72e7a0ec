"""The nearest-bank-entry search modes side by side on the same fitted memory bank: int8, pca and exact.

    python benchmarks/vision_search_pca.py CATEGORY [CATEGORY ...] [--model DIR ...] [--synthetic] [--reps 3]

Each category is trained once with the defaults (or ``--model`` gives trained models, one per category, in order).
Then, for each ``search`` mode on the same bank:

- accuracy: ``linewatch evaluate``'s image AUROC, pixel AUROC and AUPRO (PyTorch path);
- the search itself on the category's test patches (every third patch of every test image): the share of patches
  whose returned distance exceeds the true nearest distance by more than 1e-4 of it (another entry than the nearest),
  and the largest and mean excess (relative);
- the cost: the model exported to ONNX with that mode and its graph timed in ONNX Runtime on one thread, two
  images per call (the stream's batch), median ms per image over ``--reps`` alternating rounds of 20 calls.

Prints markdown tables. ``--synthetic`` adds the project's generated category (seed 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

MODES = ("int8", "pca", "exact")

from vision_search_step import models  # noqa: E402  (benchmarks/ is on the path when a script there runs)


def search_errors(det, samples) -> dict[str, tuple[float, float, float]]:
    """Per mode: (share of patches given another entry than the nearest, largest and mean relative excess)."""
    import torch

    from linewatch.vision.batches import iter_batches
    from linewatch.vision.methodchoice import set_search

    part = set_search(det, search=MODES[0])  # the PatchCore that searches (the patches do not depend on the search)
    rows = []
    with torch.inference_mode():
        for batch in iter_batches([s.path for s in samples], det.preprocess, 8):
            q, _, _ = part.graph().embed(torch.from_numpy(batch.inputs))
            rows.append(q.reshape(-1, q.shape[-1])[::3])
    q = torch.cat(rows)
    bank = part.memory_bank_
    # the true nearest distances from the differences themselves (a matrix-product cdist rounds small distances)
    exact = "donot_use_mm_for_euclid_dist"
    true = torch.cat(
        [torch.cdist(q[s : s + 2048], bank, compute_mode=exact).min(1).values for s in range(0, q.shape[0], 2048)]
    )
    out = {}
    for mode in MODES:
        set_search(det, search=mode)
        with torch.inference_mode():
            d2, _ = part.graph().nearest(q[None])
        d = torch.sqrt(torch.clamp(d2[0], min=0.0))
        excess = (d - true) / torch.clamp(true, min=1e-6)
        out[mode] = (float((excess > 1e-4).float().mean()), float(excess.max()), float(excess.mean()))
    return out


def graph_ms(paths: dict[str, Path], hw: tuple[int, int], reps: int) -> dict[str, float]:
    """Median ms per image of each exported graph on one thread, two images per call, rounds alternating."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sessions = {m: ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]) for m, p in paths.items()}
    x = np.random.default_rng(0).standard_normal((2, 3, *hw)).astype(np.float32)
    times: dict[str, list[float]] = {m: [] for m in paths}
    for s in sessions.values():
        for _ in range(3):
            s.run(None, {"image": x})
    for _ in range(reps):
        for m, s in sessions.items():
            for _ in range(20):
                t = time.perf_counter()
                s.run(None, {"image": x})
                times[m].append((time.perf_counter() - t) / 2)
    return {m: float(np.median(v)) * 1e3 for m, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("categories", type=Path, nargs="*", help="MVTec-layout categories")
    ap.add_argument("--model", type=Path, action="append", default=[], help="a trained model per category, in order")
    ap.add_argument("--synthetic", action="store_true", help="add the generated category (seed 1)")
    ap.add_argument("--reps", type=int, default=3, help="alternating timing rounds of 20 calls per mode")
    args = ap.parse_args()

    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.export import export_onnx
    from linewatch.vision.methodchoice import set_search
    from linewatch.vision.saving import save

    accuracy, errors, costs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for cat, ds, det in models(args.categories, args.model, args.synthetic, tmp):
            paths = {}
            for mode in MODES:
                part = set_search(det, search=mode)
                bank = part.memory_bank_.shape[0]
                t = time.perf_counter()
                r = evaluate(det, ds)
                accuracy.append(
                    f"| {cat.name} | {bank} | {mode} | {r['image_auroc']:.4f} | {r['pixel_auroc']:.4f} | "
                    f"{r['aupro']:.4f} | {time.perf_counter() - t:.0f} |"
                )
                print(accuracy[-1], file=sys.stderr, flush=True)
                paths[mode] = export_onnx(save(det, Path(tmp) / f"{cat.name}-{mode}"))
            for mode, (share, worst, mean) in search_errors(det, ds.test).items():
                errors.append(f"| {cat.name} | {mode} | {share:.4f} | {worst:.4f} | {mean:.2e} |")
            hw = det.preprocess.input_hw
            ms = graph_ms(paths, hw, args.reps)
            cells = " | ".join(f"{ms[m]:.1f}" for m in MODES)
            costs.append(f"| {cat.name} | {bank} | {hw[1]}x{hw[0]} | {cells} |")
            print(costs[-1], file=sys.stderr, flush=True)
    print("| category | bank | search | image AUROC | pixel AUROC | AUPRO | eval s |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(accuracy))
    print()
    print("| category | search | patches given a farther entry (> 1e-4) | largest excess | mean excess |")
    print("|---|---|---|---|---|")
    print("\n".join(errors))
    print()
    print("| category | bank | input | " + " | ".join(f"graph ms per image, {m}" for m in MODES) + " |")
    print("|---|---|---|" + "---|" * len(MODES))
    print("\n".join(costs))


if __name__ == "__main__":
    main()
