"""Does the drift watch (``linewatch.core.drift``) notice a change of light, lens or camera, and stay quiet when
nothing changed?

    python benchmarks/vision_drift.py ../shared/data/magnetic_tile/magnetic_tile [--model MODEL] [--synthetic] \
        [--changes brightness=0.8,contrast=0.7,zoom=0.05,blur=1.5] [--recent 30,60,90] [--defects 0,0.1] \
        [--draws 300] [--cache DIR]

MODEL is a model trained by ``linewatch train`` on the category (trained here with the defaults when left out).
``--synthetic`` adds the project's generated set (200 good test images) with a default model trained on it. Every
test image is scored as photographed and as each change makes it (Pillow: a lamp gone dim or a new exposure, a lens
that lost contrast or focus, the camera moved closer or turned), keeping its score, map peak, look (whole-image
vector) and brightness (``linewatch.vision.appearance``).

The category's good test images are split in halves at random for each draw: half A plays the good parts a model was
recalibrated on (``linewatch calibrate``: their scores and looks become the reference), half B the parts inspected
next. A station's recent inspections are ``N`` images drawn from B (without replacement) with a share of the
defective test images mixed in, all under one change. Two references are compared: the held-out training images'
scores and looks the manifest keeps (the thresholds as trained) and A's as photographed (as recalibrated). Where
``N`` is more than half B holds, the parts are drawn with replacement (marked *: a longer run of the same parts). For
each cell: the share of draws each signal of the watch (scores, reviewed flags, looks, brightness) and the watch
itself call ``watch`` or worse and ``drift``, and the mean AUROCs, as a markdown table. As photographed is the
false-alarm rate of the watch itself.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ORDER = ("unknown", "ok", "watch", "drift")


def _looks(scorer, sources) -> dict:
    """Each image's raw score and map peak (``scores``: (2, n)), look (``vectors``: (n, C)) and ``brightness``."""
    got = list(scorer.raw_looks(list(sources)))
    return {
        "scores": np.array([g[:2] for g in got], np.float64).T,
        "vectors": np.stack([g[2] for g in got]).astype(np.float32),
        "brightness": np.array([g[3] for g in got], np.float64),
    }


def _changed(paths, change: str, amount: float):
    """The images as a change of light, lens or camera makes them (Pillow)."""
    from PIL import ImageEnhance, ImageFilter

    from linewatch.vision.images import open_image

    for p in paths:
        im = open_image(p)
        if change == "brightness":
            im = ImageEnhance.Brightness(im).enhance(amount)
        elif change == "contrast":
            im = ImageEnhance.Contrast(im).enhance(amount)
        elif change == "blur":
            im = im.filter(ImageFilter.GaussianBlur(amount))
        elif change == "zoom":  # the camera closer: a border of ``amount`` of each side cut off
            w, h = im.size
            dx, dy = int(w * amount), int(h * amount)
            im = im.crop((dx, dy, w - dx, h - dy)).resize((w, h))
        elif change == "rotate":
            im = im.rotate(amount)
        else:
            raise SystemExit(f"unknown change {change!r}")
        yield im


def _parse_changes(text: str) -> list[tuple[str, float]]:
    out = []
    for item in (t for t in text.split(",") if t):
        name, _, amount = item.partition("=")
        out.append((name, float(amount)))
    return out


def scored(
    category: Path, model: Path | None, changes: list[tuple[str, float]], work: Path, cache: Path | None
) -> dict:
    """{"reference": held-out training scores, "ref_vectors", "ref_brightness", "threshold", "rate", "floor", change:
    (good, defects)}, each of good and defects a ``_looks`` dict."""
    from linewatch.vision.appearance import kept_reference_looks
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.manifest import read_manifest
    from linewatch.vision.runtime import open_model

    name = category.name
    path = cache / f"{name}.npz" if cache is not None else None
    if path is not None and path.exists():
        z = np.load(path, allow_pickle=False)
        out = {
            "reference": z["reference"],
            "ref_vectors": z["ref_vectors"],
            "ref_brightness": z["ref_brightness"],
            **{k: float(z[k]) for k in ("floor", "threshold", "rate")},
        }
        for key in z.files:
            if key.endswith(".good.scores"):
                change = key[: -len(".good.scores")]
                out[change] = tuple(
                    {f: z[f"{change}.{part}.{f}"] for f in ("scores", "vectors", "brightness")}
                    for part in ("good", "bad")
                )
        return out
    ds = load_dataset(category)
    if model is None:
        from linewatch.vision.saving import create_detector, save

        model = work / f"model-{name}"
        save(create_detector("combined").fit(ds.train), model)
    manifest = read_manifest(model)
    kept = manifest.get("calibration_scores")
    looks = kept_reference_looks(manifest)
    if not kept or looks.vectors is None:
        sys.exit(f"{model} keeps no held-out scores and looks: train it again with this linewatch")
    scorer = open_model(model)
    good = [s.path for s in ds.test if not s.is_anomalous]
    bad = [s.path for s in ds.test if s.is_anomalous]
    result = {
        "reference": np.array([kept["image"], kept["peak"]], np.float64),
        "ref_vectors": looks.vectors,
        "ref_brightness": looks.brightness,
        "floor": float(kept["floor"]),
        "threshold": float(manifest["calibration"]["image_threshold"]),
        "rate": float(manifest["calibration"]["false_alarm_rate"]),
        "as photographed": (_looks(scorer, good), _looks(scorer, bad)),
    }
    for change, amount in changes:
        result[f"{change} {amount:g}"] = (
            _looks(scorer, _changed(good, change, amount)),
            _looks(scorer, _changed(bad, change, amount)),
        )
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        flat = {k: v for k, v in result.items() if not isinstance(v, tuple)}
        for k, pair in ((k, v) for k, v in result.items() if isinstance(v, tuple)):
            for part, looks_of in zip(("good", "bad"), pair, strict=True):
                for f, arr in looks_of.items():
                    flat[f"{k}.{part}.{f}"] = arr
        np.savez(path, **flat)
    return result


def table(name: str, data: dict, recents: list[int], defects: list[float], draws: int) -> None:
    from linewatch.core.drift import Looks, score_drift
    from linewatch.vision.thresholds import calibrate

    base = data["as photographed"][0]
    n_good = base["scores"].shape[1]
    rate = data["rate"]
    rng = np.random.default_rng(0)
    print(
        f"\n{name}: {n_good} good test images (halves of {n_good // 2}); reference: {data['reference'].shape[1]} "
        f"held-out training images, or half A ({n_good // 2}) as photographed; promised false alarms {rate:.0%}; "
        f"{draws} draws per row\n"
    )
    print(
        "| change | reference | recent N | defects | false alarms on good parts | shift AUROC | look AUROC "
        "| brightness AUROC | scores | reviewed flags | scores and flags (the watch before the looks) | looks "
        "| brightness | **the watch** |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("|  |  |  |  |  |  |  |  |" + " watch / drift |" * 6)
    changes = [k for k in data if isinstance(data[k], tuple)]
    for change in changes:
        good, bad = data[change]
        for ref_name in ("training", "recalibrated on A"):
            for n in recents:
                for d in defects:
                    n_bad = int(round(n * d))
                    # more parts than half B holds: drawn with replacement (a longer run of the same parts)
                    again = n - n_bad > n_good - n_good // 2 or n_bad > bad["scores"].shape[1]
                    got = {k: [] for k in ("scores", "alarms", "before", "looks", "brightness", "all")}
                    figures = {k: [] for k in ("shift", "look", "bright", "far")}
                    for _ in range(draws):
                        order = rng.permutation(n_good)
                        a, b = order[: n_good // 2], order[n_good // 2 :]
                        if ref_name == "training":
                            ref, threshold = data["reference"][0], data["threshold"]
                            ref_looks = Looks(data["ref_vectors"], data["ref_brightness"])
                        else:
                            ref = base["scores"][0, a]
                            threshold = calibrate(
                                base["scores"][0, a], base["scores"][1, a], rate, data["floor"]
                            ).image_threshold
                            ref_looks = Looks(base["vectors"][a], base["brightness"][a])
                        gi = rng.choice(b, n - n_bad, replace=again)
                        bi = rng.choice(bad["scores"].shape[1], n_bad, replace=again)
                        g = good["scores"][0, gi]
                        recent = np.concatenate([g, bad["scores"][0, bi]])
                        now = Looks(
                            np.concatenate([good["vectors"][gi], bad["vectors"][bi]]),
                            np.concatenate([good["brightness"][gi], bad["brightness"][bi]]),
                        )
                        overturned = int(np.sum(g >= threshold))  # every flag reviewed: the good ones overturned
                        r = score_drift(ref, recent, threshold, rate, overturned, ref_looks, now)
                        got["scores"].append(r.scores_level)
                        got["alarms"].append(r.false_alarms_level)
                        got["before"].append(max(r.scores_level, r.false_alarms_level, key=ORDER.index))
                        got["looks"].append(r.look_level)
                        got["brightness"].append(r.brightness_level)
                        got["all"].append(r.level)
                        figures["shift"].append(r.shift_auroc)
                        figures["look"].append(r.look_auroc)
                        figures["bright"].append(r.brightness_auroc)
                        figures["far"].append(overturned / n)

                    def shares(levels) -> str:
                        levels = np.array(levels)
                        return f"{np.mean(levels != 'ok'):.0%} / {np.mean(levels == 'drift'):.0%}"

                    print(
                        f"| {change} | {ref_name} | {n}{' *' if again else ''} | {d:.0%} "
                        f"| {np.mean(figures['far']):.1%} "
                        f"| {np.mean(figures['shift']):.3f} | {np.mean(figures['look']):.3f} "
                        f"| {np.mean(figures['bright']):.3f} | {shares(got['scores'])} | {shares(got['alarms'])} "
                        f"| {shares(got['before'])} | {shares(got['looks'])} | {shares(got['brightness'])} "
                        f"| **{shares(got['all'])}** |",
                        flush=True,
                    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("category", type=Path, nargs="*")
    ap.add_argument("--model", type=Path, default=None, help="the model of the (first) category")
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument(
        "--changes",
        default="brightness=0.8,brightness=0.9,brightness=1.1,brightness=1.25,contrast=0.7,zoom=0.05,blur=1.5",
        help="what changes: brightness, contrast (Pillow's factors), blur (Gaussian radius in px), zoom (share of "
        "each side cut off), rotate (degrees)",
    )
    ap.add_argument("--recent", default="30,60,90")
    ap.add_argument("--defects", default="0,0.1")
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--cache", type=Path, default=None, help="keep the scores here and reuse them")
    args = ap.parse_args()
    changes = _parse_changes(args.changes)
    recents = [int(n) for n in args.recent.split(",")]
    defects = [float(d) for d in args.defects.split(",")]
    work = Path(tempfile.mkdtemp(prefix="lw-drift-"))
    try:
        categories = list(args.category)
        if args.synthetic:
            from linewatch.vision.synthetic import make_dataset

            categories.append(make_dataset(work / "generated", n_train=100, n_test_good=200, n_test_defect=20, seed=1))
        for i, category in enumerate(categories):
            data = scored(category, args.model if i == 0 else None, changes, work, args.cache)
            table(category.name, data, recents, defects, args.draws)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
