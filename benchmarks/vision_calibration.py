"""Do the thresholds keep their false-alarm rate on good parts they never saw, and does `linewatch calibrate` restore
it when the light changes?

    python benchmarks/vision_calibration.py ../shared/data/magnetic_tile/magnetic_tile --model MODEL \
        [--rates 0.01,0.05] [--splits 20] [--brightness 0.8,1.25]

MODEL is a model trained by ``linewatch train`` on the category (trained here with the defaults into a temporary
folder when left out). The category's good *test* images are split in halves at random, ``--splits`` times: one half
(A) plays the good parts of today given to ``linewatch calibrate``, the other (B) the good parts inspected next. For
each rate, two sets of thresholds are compared:

- the training thresholds: the rule applied to the held-out training images' scores the manifest keeps (at the
  model's own rate, exactly the manifest's thresholds);
- recalibrated: the same rule applied to A's scores (what ``linewatch calibrate MODEL A --false-alarm-rate R`` sets;
  checked once against the command's library call on the first split).

Each is measured by the share of B flagged (false alarms; the target is the rate) and the share of the defective test
images not flagged (misses), averaged over the splits. The same is done with every test image darker or brighter
(``--brightness``: Pillow's brightness factors, a lamp gone dim or a new camera exposure), thresholds from the
training images (photographed in the old light) against thresholds recalibrated on A in the new light.

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def _scores(scorer, sources) -> tuple[np.ndarray, np.ndarray]:
    scores, peaks = [], []
    for score, amap, _size, _name in scorer.raw_scores(sources):
        scores.append(score)
        peaks.append(float(np.max(amap)))
    return np.array(scores, np.float64), np.array(peaks, np.float64)


def _lit(paths, factor: float):
    from PIL import ImageEnhance

    from linewatch.vision.images import open_image

    for p in paths:
        yield ImageEnhance.Brightness(open_image(p)).enhance(factor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("category", type=Path)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--rates", default="0.01,0.05")
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--brightness", default="0.8,1.25")
    args = ap.parse_args()

    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.manifest import read_manifest
    from linewatch.vision.recalibration import recalibrate
    from linewatch.vision.runtime import open_model
    from linewatch.vision.thresholds import calibrate

    work = Path(tempfile.mkdtemp(prefix="lw-calibration-"))
    try:
        model = args.model
        ds = load_dataset(args.category)
        if model is None:
            from linewatch.vision.saving import create_detector, save

            model = work / "model"
            save(create_detector("combined").fit(ds.train), model)
        kept = read_manifest(model).get("calibration_scores")
        if not kept:
            sys.exit(f"{model} keeps no held-out scores: train it again with this linewatch")
        held_s, held_p, floor = np.array(kept["image"]), np.array(kept["peak"]), float(kept["floor"])
        scorer = open_model(model)
        good = [s.path for s in ds.test if not s.is_anomalous]
        bad = [s.path for s in ds.test if s.is_anomalous]
        light = {"as photographed": (_scores(scorer, good), _scores(scorer, bad))}
        for factor in (float(f) for f in args.brightness.split(",") if f):
            light[f"brightness × {factor:g}"] = (
                _scores(scorer, _lit(good, factor)),
                _scores(scorer, _lit(bad, factor)),
            )
        rates = [float(r) for r in args.rates.split(",")]
        rng = np.random.default_rng(0)
        halves = [rng.permutation(len(good)) for _ in range(args.splits)]
        rows = []
        for name, ((g_s, g_p), (b_s, _)) in light.items():
            for rate in rates:
                trained = calibrate(held_s, held_p, rate, floor).image_threshold
                res = {"training": [], "recalibrated on A": []}
                for k, order in enumerate(halves):
                    a, b = order[: len(good) // 2], order[len(good) // 2 :]
                    recal = calibrate(g_s[a], g_p[a], rate, floor).image_threshold
                    if k == 0 and name == "as photographed":  # the command's own path gives the same threshold
                        done = recalibrate(model, [good[i] for i in a], rate, out=work / "check")
                        assert abs(done.after.image_threshold - recal) <= 1e-4 * abs(recal), (done.after, recal)
                    for what, t in (("training", trained), ("recalibrated on A", recal)):
                        res[what].append(((g_s[b] >= t).mean(), (b_s < t).mean()))
                for what, vals in res.items():
                    far, miss = np.array(vals).T
                    rows.append((name, rate, what, far.mean(), far.std(), miss.mean()))
        print(
            f"\n{args.category.name}: {len(good)} good test images (halves of {len(good) // 2}), {len(bad)} defective; "
            f"training thresholds from {kept['images']} held-out images; {args.splits} splits\n"
        )
        print("| light | target rate | thresholds | false alarms on B (mean ± sd) | misses |")
        print("|---|---:|---|---:|---:|")
        for name, rate, what, far, sd, miss in rows:
            print(f"| {name} | {rate:.0%} | {what} | {far:.1%} ± {sd:.1%} | {miss:.1%} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
