"""The coarse-to-fine search against searching every patch, on the same fitted memory bank.

    python benchmarks/vision_search_step.py CATEGORY [CATEGORY ...] [--model DIR ...] [--synthetic]
        [--variants 1:0,2:0,2:0.1,2:0.2]

Each category is trained once with the defaults (``combined``; or ``--model`` gives trained models, one per category,
in order);
then the same bank is evaluated (``linewatch evaluate``'s metrics, PyTorch path) with each ``step:refine`` variant:
``search_step`` (1 = every patch searched) and ``refine`` (share of the interpolated patches searched too). Prints
a markdown table: image AUROC, pixel AUROC, AUPRO, and the share of patches searched per image.
``--synthetic`` adds the project's generated category (seed 1).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path


def searched_share(h: int, w: int, step: int, refine: float) -> float:
    from linewatch.vision.patchcore import coarse_layout

    if step == 1:
        return 1.0
    kept, _, _, k = coarse_layout(h, w, step, refine)
    return (len(kept) + k) / (h * w)


def models(categories: list[Path], given: list[Path], synthetic: bool, tmp: str):
    """(category, its dataset, a model) for each category in order (the generated one last with ``synthetic``): the
    ``given`` models in order, the rest trained with the defaults."""
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.saving import create_detector, load

    cats = list(categories)
    if synthetic:
        from linewatch.vision.synthetic import make_dataset

        # as benchmarks/vision_auto.py: enough good images that a bank of twice the default size can fill
        cats.append(make_dataset(Path(tmp) / "synthetic", n_train=150, n_test_good=20, n_test_defect=10, seed=1))
    for i, cat in enumerate(cats):
        ds = load_dataset(cat)
        if i < len(given):
            det = load(given[i])
        else:
            print(f"training {cat.name} with the defaults ...", file=sys.stderr)
            det = create_detector("combined").fit(ds.train)
        yield cat, ds, det


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("categories", type=Path, nargs="*", help="MVTec-layout categories")
    ap.add_argument("--model", type=Path, action="append", default=[], help="a trained model per category, in order")
    ap.add_argument("--synthetic", action="store_true", help="add the generated category (seed 1)")
    ap.add_argument("--variants", default="1:0,2:0,2:0.1,2:0.2", help="step:refine pairs, comma separated")
    args = ap.parse_args()

    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.methodchoice import set_search

    variants = [(int(a), float(b)) for a, b in (v.split(":") for v in args.variants.split(","))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cat, ds, det in models(args.categories, args.model, args.synthetic, tmp):
            h, w = det.preprocess.input_hw
            stride = det.default_strides[0]  # the finest tap's: the patch grid, as PatchCore's own count
            grid = (math.ceil(h / stride), math.ceil(w / stride))
            for step, refine in variants:
                part = set_search(det, search_step=step, refine=refine)
                t = time.perf_counter()
                r = evaluate(det, ds)
                share = searched_share(*grid, step, refine)
                rows.append(
                    f"| {cat.name} | {part.memory_bank_.shape[0]} | {step} | {refine:g} | {share:.0%} | "
                    f"{r['image_auroc']:.4f} | {r['pixel_auroc']:.4f} | {r['aupro']:.4f} | "
                    f"{time.perf_counter() - t:.0f} |"
                )
                print(rows[-1], file=sys.stderr, flush=True)
    print("| category | bank | search_step | refine | patches searched | image AUROC | pixel AUROC | AUPRO | eval s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
