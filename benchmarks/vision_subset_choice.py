"""Can the input size be chosen on a subset of the training images, then fitted once?

    python benchmarks/vision_subset_choice.py ../shared/data/magnetic_tile/magnetic_tile \
        [--subsets 64:24,128:48] [--sizes 256,320] [--repeats 2]

``auto=full`` chooses a finer input (256 -> 320 px) by fitting the whole training set at each size and checking every
fit on defects painted on the held-out good images (docs/benchmarks.md, "The finer input as a candidate"): the
right choice on magnetic_tile and bottle, but two or three full fits. A cheaper choice would fit PatchCore (the
default bank size, no automatic choice) on ``N`` training images spread over the set, check each size on ``H``
held-out images painted three times each (the automatic choice's ``PER_IMAGE``; the same painted copies for every
size), and keep the finer size when its self-check's pixel AUROC beats the default's by ``margin_for(H)``.

For each ``N:H`` pair and each repeat (a repeat takes another spread of the training images: offset by one image),
prints each size's fit and check seconds, the self-check's image and pixel AUROC, and what the rule would choose.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path


def run(category: Path, n_train: int, n_held: int, sizes: list[int], repeat: int) -> list[dict]:
    from linewatch.vision.autochoice import PER_IMAGE, margin_for, score_of
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.images import spread
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.selfcheck import WORKING, prepare, self_check_many

    images = load_dataset(category).train
    det = PatchCore(auto="off", self_check=False)
    det.params_ = det._validate_params()
    train, held = det.split(images)
    subset = list(spread(train[repeat:], n_train))
    held = list(spread(held, n_held))
    painted = prepare(held, PER_IMAGE, 0, max_side=WORKING * max(sizes) * 2)
    rows = []
    for px in sizes:
        started = time.perf_counter()
        model = PatchCore(auto="off", self_check=False, image_size=px, holdout=0.0)
        model._calibrate_on_fit = False  # no held-out images in the subset's fit: the check needs no threshold
        model.fit(subset)
        fitted = time.perf_counter()
        check = self_check_many([model], painted)[0]
        rows.append(
            {
                "px": px,
                "fit_s": fitted - started,
                "check_s": time.perf_counter() - fitted,
                "image": check.image_auroc,
                "pixel": score_of(check),
            }
        )
    margin = margin_for(len(painted.images))
    best = max(rows[1:], key=lambda r: r["pixel"]) if len(rows) > 1 else rows[0]
    chosen = best["px"] if best["pixel"] >= rows[0]["pixel"] + margin else rows[0]["px"]
    for r in rows:
        r.update(n_train=len(subset), n_held=len(painted.images), repeat=repeat, margin=margin, chosen=chosen)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("category", type=Path, nargs="+")
    ap.add_argument("--subsets", default="64:24,128:48", help="training images:held-out images, comma separated")
    ap.add_argument("--sizes", default="256,320", help="input sizes, the default first")
    ap.add_argument("--repeats", type=int, default=1, help="spreads of the training images per subset")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    pairs = [tuple(int(v) for v in p.split(":")) for p in args.subsets.split(",")]
    print(
        "| category | train / held-out | repeat | input px | fit s | check s | self-check image | self-check pixel "
        "| margin | chosen |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for category in args.category:
        if not glob.glob(str(category / "train" / "good" / "*")):
            raise SystemExit(f"no MVTec-layout category at {category}")
        for n_train, n_held in pairs:
            for repeat in range(args.repeats):
                for r in run(category, n_train, n_held, sizes, repeat):
                    print(
                        f"| {category.name} | {r['n_train']} / {r['n_held']} | {repeat} | {r['px']} | {r['fit_s']:.1f} "
                        f"| {r['check_s']:.1f} | {r['image']:.4f} | {r['pixel']:.4f} | {r['margin']:.4f} "
                        f"| {r['chosen']} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
