"""Does the drift watch (``linewatch.core.drift``) notice a change of light, and stay quiet when nothing changed?

    python benchmarks/vision_drift.py ../shared/data/magnetic_tile/magnetic_tile [--model MODEL] [--synthetic] \
        [--brightness 0.8,0.9,1.1,1.25] [--recent 30,60,90] [--defects 0,0.1] [--draws 300] [--cache DIR]

MODEL is a model trained by ``linewatch train`` on the category (trained here with the defaults when left out).
``--synthetic`` adds the project's generated set (200 good test images) with a default model trained on it. Every
test image is scored as photographed and with Pillow's brightness factors (a lamp gone dim, a new exposure).

The category's good test images are split in halves at random for each draw: half A plays the good parts a model was
recalibrated on (``linewatch calibrate``: its scores become the reference), half B the parts inspected next. A
station's recent inspections are ``N`` images drawn from B (without replacement) with a share of the defective test
images mixed in, all in one light. Two references are compared: the held-out training images' scores the manifest
keeps (the thresholds as trained) and A's scores as photographed (as recalibrated). Where ``N`` is more than half B
holds, the parts are drawn with replacement (marked *: a longer run of the same parts). For each cell the share of
draws the watch calls ``drift`` and ``watch`` or worse, and the mean shift AUROC, are printed as a markdown table. As
photographed against A is the false-alarm rate of the watch itself.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def _scores(scorer, sources) -> np.ndarray:
    """(2, n): each image's raw score and its map's peak."""
    got = [(score, float(np.max(amap))) for score, amap, _size, _name in scorer.raw_scores(sources)]
    return np.array(got, np.float64).T


def _lit(paths, factor: float):
    from PIL import ImageEnhance

    from linewatch.vision.images import open_image

    for p in paths:
        yield ImageEnhance.Brightness(open_image(p)).enhance(factor)


def scored(category: Path, model: Path | None, factors: list[float], work: Path, cache: Path | None) -> dict:
    """{"reference": held-out training scores, "threshold", "rate", light name: (good scores, defect scores)}."""
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.manifest import read_manifest
    from linewatch.vision.runtime import open_model

    name = category.name
    if cache is not None and (cache / f"{name}.npz").exists():
        z = np.load(cache / f"{name}.npz", allow_pickle=False)
        out = {k: z[k] for k in z.files}
        return {
            "reference": out.pop("reference"),
            "floor": float(out.pop("floor")),
            "threshold": float(out.pop("threshold")),
            "rate": float(out.pop("rate")),
            **{k[:-5]: (out[k], out[k[:-5] + ".bad"]) for k in out if k.endswith(".good")},
        }
    ds = load_dataset(category)
    if model is None:
        from linewatch.vision.saving import create_detector, save

        model = work / f"model-{name}"
        save(create_detector("combined").fit(ds.train), model)
    manifest = read_manifest(model)
    kept = manifest.get("calibration_scores")
    if not kept:
        sys.exit(f"{model} keeps no held-out scores: train it again with this linewatch")
    scorer = open_model(model)
    good = [s.path for s in ds.test if not s.is_anomalous]
    bad = [s.path for s in ds.test if s.is_anomalous]
    result = {
        "reference": np.array([kept["image"], kept["peak"]], np.float64),
        "floor": float(kept["floor"]),
        "threshold": float(manifest["calibration"]["image_threshold"]),
        "rate": float(manifest["calibration"]["false_alarm_rate"]),
        "as photographed": (_scores(scorer, good), _scores(scorer, bad)),
    }
    for f in factors:
        result[f"brightness × {f:g}"] = (_scores(scorer, _lit(good, f)), _scores(scorer, _lit(bad, f)))
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        flat = {k: v for k, v in result.items() if not isinstance(v, tuple)}
        for k, (g, b) in ((k, v) for k, v in result.items() if isinstance(v, tuple)):
            flat[f"{k}.good"], flat[f"{k}.bad"] = g, b
        np.savez(cache / f"{name}.npz", **flat)
    return result


def table(name: str, data: dict, recents: list[int], defects: list[float], draws: int) -> None:
    from linewatch.core.drift import score_drift
    from linewatch.vision.thresholds import calibrate

    base_good = data["as photographed"][0]
    n_good = base_good.shape[1]
    rate = data["rate"]
    rng = np.random.default_rng(0)
    print(
        f"\n{name}: {n_good} good test images (halves of {n_good // 2}); reference: {data['reference'].shape[1]} "
        f"held-out training scores, or half A ({n_good // 2}) as photographed; promised false alarms {rate:.0%}; "
        f"{draws} draws per row\n"
    )
    print(
        "| light | reference | recent N | defects | false alarms on good parts | shift AUROC | scores: watch / drift "
        "| reviewed flags: watch / drift | **the watch: watch / drift** |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    lights = [k for k in data if isinstance(data[k], tuple)]
    for light in lights:
        good, bad = data[light]
        for ref_name in ("training", "recalibrated on A"):
            for n in recents:
                for d in defects:
                    n_bad = int(round(n * d))
                    # more parts than half B holds: drawn with replacement (a longer run of the same parts)
                    again = n - n_bad > n_good - n_good // 2 or n_bad > bad.shape[1]
                    got = {"scores": [], "alarms": [], "all": []}
                    aucs, fars = [], []
                    for _ in range(draws):
                        order = rng.permutation(n_good)
                        a, b = order[: n_good // 2], order[n_good // 2 :]
                        if ref_name == "training":
                            ref, threshold = data["reference"][0], data["threshold"]
                        else:
                            ref = base_good[0, a]
                            threshold = calibrate(base_good[0, a], base_good[1, a], rate, data["floor"]).image_threshold
                        g = good[0, rng.choice(b, n - n_bad, replace=again)]
                        recent = np.concatenate([g, rng.choice(bad[0], n_bad, replace=again)])
                        overturned = int(np.sum(g >= threshold))  # every flag reviewed: the good ones overturned
                        r = score_drift(ref, recent, threshold, rate, overturned)
                        got["scores"].append(r.scores_level)
                        got["alarms"].append(r.false_alarms_level)
                        got["all"].append(r.level)
                        aucs.append(r.shift_auroc)
                        fars.append(overturned / n)

                    def shares(levels) -> str:
                        levels = np.array(levels)
                        return f"{np.mean(levels != 'ok'):.0%} / {np.mean(levels == 'drift'):.0%}"

                    print(
                        f"| {light} | {ref_name} | {n}{' *' if again else ''} | {d:.0%} | {np.mean(fars):.1%} "
                        f"| {np.mean(aucs):.3f} "
                        f"| {shares(got['scores'])} | {shares(got['alarms'])} | **{shares(got['all'])}** |",
                        flush=True,
                    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("category", type=Path, nargs="*")
    ap.add_argument("--model", type=Path, default=None, help="the model of the (first) category")
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--brightness", default="0.8,0.9,1.1,1.25")
    ap.add_argument("--recent", default="30,60,90")
    ap.add_argument("--defects", default="0,0.1")
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--cache", type=Path, default=None, help="keep the scores here and reuse them")
    args = ap.parse_args()
    factors = [float(f) for f in args.brightness.split(",") if f]
    recents = [int(n) for n in args.recent.split(",")]
    defects = [float(d) for d in args.defects.split(",")]
    work = Path(tempfile.mkdtemp(prefix="lw-drift-"))
    try:
        categories = list(args.category)
        if args.synthetic:
            from linewatch.vision.synthetic import make_dataset

            categories.append(make_dataset(work / "generated", n_train=100, n_test_good=200, n_test_defect=20, seed=1))
        for i, category in enumerate(categories):
            data = scored(category, args.model if i == 0 else None, factors, work, args.cache)
            table(category.name, data, recents, defects, args.draws)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
