"""Setting a trained model's thresholds again without training it: from good images of today (new lighting, a new
batch of parts, a camera moved), or, for another false-alarm rate alone, from the held-out good scores kept at
training. What the model learned (the bank, the Gaussians, a combined model's weights) is untouched: only the
manifest changes, rewritten whole, with the calibration it replaces kept in its history.

Needs neither torch nor onnxruntime to read or write; scoring images uses the model's fastest path here
(``runtime.open_model``)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from linewatch.core.modelfiles import (
    calibration_history,
    check_false_alarm_rate,
    copy_target,
    previous_calibration,
    rewrite_manifest,
)
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.vision.appearance import kept_looks
from linewatch.vision.batches import Source, Unreadable
from linewatch.vision.manifest import read_manifest
from linewatch.vision.thresholds import Calibration, calibrate

#: fewer good images than this set no threshold: the spread of their scores would be guesswork
MIN_IMAGES = 5
#: the calibrations a manifest remembers, the newest last
HISTORY = 20
#: the most held-out scores a manifest keeps (a few thousand numbers; more add nothing to a quantile at 0.1 %)
MAX_KEPT = 5000
#: of the calibrations in the history that replaced the good scores, the newest this many keep the scores they were
#: set from, so that going back (``restore_calibration``) brings those back too; older ones keep their thresholds alone
HISTORY_SCORES = 3


def kept_scores(scores: dict | None, source: str, images: int | None = None) -> dict | None:
    """The manifest's record of the good scores a calibration came from (``Detector.calibration_scores_``): raw image
    scores, map peaks, the method's least threshold, where they came from and when, and the images' looks where they
    were taken (``appearance.kept_looks``); None when there are none. A record read from a manifest (a loaded model
    saved again) keeps its own source, count and time."""
    if not scores or len(scores.get("image", ())) == 0:
        return None
    image, peak = list(scores["image"]), list(scores["peak"])
    total = len(image)
    if len(image) > MAX_KEPT:  # evenly thinned: the quantiles stay
        pick = np.linspace(0, len(image) - 1, MAX_KEPT).round().astype(int)
        image, peak = [image[i] for i in pick], [peak[i] for i in pick]
    looks = {k: scores[k] for k in ("brightness", "vectors") if scores.get(k) is not None}  # ``kept_looks``
    return {
        "image": [float(v) for v in image],
        "peak": [float(v) for v in peak],
        "floor": float(scores.get("floor", 0.0)),
        "source": scores.get("source", source),
        "images": int(images if images is not None else scores.get("images", total)),
        "at": scores.get("at") or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **looks,
    }


@dataclass(frozen=True)
class Recalibrated:
    """What a recalibration did: the thresholds before and after, and what each flags of the good images scored."""

    model_dir: Path
    before: Calibration | None
    after: Calibration
    source: str  # "images": good images scored now; "kept scores": the held-out scores of the last calibration
    images: int  # good images the thresholds come from
    skipped: list[str] = field(default_factory=list)  # good images that could not be read (path: why)
    flagged_before: int | None = None  # of those images, how many the previous thresholds call anomalous
    flagged_after: int = 0
    regions_before: int | None = None  # and how many have a map reaching the pixel threshold (regions are drawn)
    regions_after: int = 0
    stale_metrics: bool = False  # the manifest holds an evaluation made at other thresholds
    scores_from: str = "images"  # where the scores come from: "images" given now, or "training"'s held-out images
    # ``restore_calibration``: when the calibration gone back to had been made (None: not recorded), and whether the
    # good scores it was set from came back with it (False: the history no longer kept them; the later ones stay)
    made: str | None = None
    scores_restored: bool = True

    def to_dict(self) -> dict:
        """JSON-ready: the thresholds as dicts, the model's folder as ``model``."""
        d = asdict(self)
        d["model"] = str(d.pop("model_dir"))
        return d


def _floor(model_dir: Path, m: dict) -> float:
    """The least threshold the model's method allows (PaDiM's one standard deviation): kept with the scores since
    they are kept; for models saved before, the method's own (which needs the vision extra)."""
    kept = m.get("calibration_scores")
    if isinstance(kept, dict) and isinstance(kept.get("floor"), int | float) and math.isfinite(kept["floor"]):
        return float(kept["floor"])
    method = m["method"]
    if method == "auto":  # a method choice: the candidate it kept
        method = ((m.get("training") or {}).get("method_choice") or {}).get("chosen") or method
    from linewatch.vision.methods import METHODS

    if method not in METHODS:
        raise ModelFileError(f"{model_dir}: the manifest names no method this linewatch knows ({method!r})")
    return float(METHODS[method].load().score_floor)


def _kept(model_dir: Path, m: dict) -> tuple[np.ndarray, np.ndarray, int]:
    kept = m.get("calibration_scores")
    if not kept:
        raise LinewatchError(
            f"{model_dir} keeps no held-out good scores (it was saved before linewatch kept them, or trained without "
            "held-out images): give a folder of good images to calibrate on"
        )
    try:
        image = np.asarray(kept["image"], dtype=np.float64)
        peak = np.asarray(kept["peak"], dtype=np.float64)
        ok = image.ndim == 1 and image.shape == peak.shape and image.size and np.isfinite(image).all()
        ok = ok and np.isfinite(peak).all()
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelFileError(f"{model_dir}: the manifest's calibration_scores are damaged (two lists of numbers)")
    return image, peak, int(kept.get("images") or image.size)


def _check_not_training(model_dir: Path, m: dict, images: list) -> None:
    """Refuse the model's own training images: a memory bank holds their patches, so they score below any good part
    it has not seen, and thresholds set on them would flag good parts all day."""
    trained_on = (m.get("training") or {}).get("fingerprint")
    if not trained_on or not images or not all(isinstance(x, str | Path) for x in images):
        return
    from linewatch.vision.datasets import fingerprint

    try:
        same = fingerprint([Path(x) for x in images]) == trained_on
    except OSError:
        return  # an unreadable file: scoring names it
    if same:
        raise LinewatchError(
            f"these are the images {model_dir} was trained on: they score lower than good parts it has not seen, and "
            "thresholds set on them would flag good parts. Calibrate on other good images (today's, or a set kept "
            "apart from training)"
        )


def score_good(
    model_dir: Path, images: Sequence[Source], progress=None, unreadable: Unreadable | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, list[str | None]]:
    """Raw image scores, map peaks, looks (None from an export older than the search embeddings), brightness
    (``appearance``) and names of images, by the model's fastest path here (its ONNX export when it has one and
    onnxruntime is installed); an image that cannot be read is told to ``unreadable`` and left out."""
    from linewatch.vision.runtime import open_model

    scorer = open_model(model_dir)
    scores, peaks, looks, lit, names = [], [], [], [], []
    for score, peak, look, bright, name in scorer.raw_looks(list(images), progress, unreadable=unreadable):
        scores.append(float(score))
        peaks.append(float(peak))
        looks.append(look)
        lit.append(float(bright))
        names.append(name)
    vectors = np.stack(looks) if looks and all(v is not None for v in looks) else None
    return np.asarray(scores, np.float64), np.asarray(peaks, np.float64), vectors, np.asarray(lit, np.float64), names


def watch_drift(model_dir: str | Path, images: Sequence[Source], progress=None, unreadable: Unreadable | None = None):
    """Do ``images`` of recent parts (as they came off the line, defects included) still score and look as the good
    images the model's thresholds were set on? ``linewatch.core.drift.score_drift`` of their raw scores and looks
    against the held-out good scores and looks the manifest keeps; a ``ScoreDrift`` (its ``level``: ok, watch, drift,
    or unknown with too few images) whose ``farthest`` names the photos that look least like the good ones (a blurred
    frame, a covered lens). The model's own training images are refused: they score below any part it has not seen."""
    from linewatch.core.drift import Looks, farthest_first, score_drift
    from linewatch.vision.appearance import kept_reference_looks
    from linewatch.vision.manifest import read_manifest

    model_dir = Path(model_dir)
    m = read_manifest(model_dir)
    reference, _peaks, _n = _kept(model_dir, m)
    try:
        looks = kept_reference_looks(m)
    except ModelFileError as e:
        raise ModelFileError(f"{model_dir}: {e}") from None
    images = list(images)
    _check_not_training(model_dir, m, images)
    scores, _, vectors, lit, names = score_good(model_dir, images, progress, unreadable)
    cal = m.get("calibration") or {}
    found = score_drift(
        reference,
        scores,
        cal.get("image_threshold"),
        cal.get("false_alarm_rate"),
        reference_looks=looks,
        recent_looks=Looks(vectors, lit),
    )
    far = found.look_distances
    if found.look_auroc is not None:  # compared: which photos look least like the good ones (a blurred frame...)
        found.farthest = [
            {"name": names[i], "distance": round(float(far[i]), 6), "brightness": round(float(lit[i]), 6)}
            for i in farthest_first(far)
        ]
    return found


def recalibrate(
    model_dir: str | Path,
    images: Sequence[Source] | None = None,
    false_alarm_rate: float | None = None,
    out: str | Path | None = None,
    progress: Callable | None = None,
    unreadable: Unreadable | None = None,
) -> Recalibrated:
    """Set the thresholds of the model in ``model_dir`` at ``false_alarm_rate`` (default: the model's current rate)
    from the raw scores of ``images`` (good parts only), or without images from the held-out scores kept at its
    last calibration. The manifest is rewritten whole (``out``: a copy of the model is written there instead, and
    ``model_dir`` is left as it is); the calibration replaced is kept in the manifest's ``calibration_history``."""
    model_dir = Path(model_dir)
    m = read_manifest(model_dir)
    out = copy_target(model_dir, out)
    try:
        before = Calibration.from_dict(m["calibration"]) if m.get("calibration") else None
    except ModelFileError as e:
        raise ModelFileError(f"{model_dir}: {e}") from None
    if false_alarm_rate is None:
        false_alarm_rate = (
            before.false_alarm_rate if before else (m.get("hyperparameters") or {}).get("false_alarm_rate", 0.01)
        )
    rate = check_false_alarm_rate(false_alarm_rate)
    floor = _floor(model_dir, m)
    skipped: list[str] = []
    if images is None:
        scores, peaks, n = _kept(model_dir, m)
        source = "kept scores"
        scores_from = str(m["calibration_scores"].get("source") or "training")
    else:
        images = list(images)
        _check_not_training(model_dir, m, images)
        if len(images) < MIN_IMAGES:
            raise LinewatchError(
                f"calibrating needs at least {MIN_IMAGES} good images (a few dozen set steadier thresholds); got "
                f"{len(images)}"
            )

        def tell(name, why):
            skipped.append(why)
            if unreadable is not None:
                unreadable(name, why)

        scores, peaks, vectors, lit, _names = score_good(model_dir, images, progress, tell)
        n = scores.size
        source = scores_from = "images"
        if n < MIN_IMAGES:
            raise LinewatchError(
                f"only {n} of the {len(images)} good images could be read; calibrating needs at least {MIN_IMAGES}"
                + (f" ({skipped[0]})" if skipped else "")
            )
    after = calibrate(scores, peaks, rate, floor)
    after = Calibration(**{**after.to_dict(), "holdout_images": int(n)})
    m = read_manifest(model_dir)  # as it is now: an evaluation may have stored metrics meanwhile
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    history = calibration_history(m)
    if before is not None:
        entry = {"calibration": before.to_dict(), "replaced": now, "by": source}
        if images is not None and isinstance(m.get("calibration_scores"), dict):
            entry["scores"] = m["calibration_scores"]  # replaced below: kept, to go back to
        if history and isinstance(history[-1].get("replaced"), str):
            entry["made"] = history[-1]["replaced"]  # the calibration replaced was the one made then
        history.append(entry)
    m["calibration_history"] = _bounded(history)
    m["calibration"] = after.to_dict()
    if images is not None:
        kept = {"image": scores, "peak": peaks, "floor": floor, **kept_looks(vectors, lit)}
        m["calibration_scores"] = kept_scores(kept, "images", n)
    return _written(model_dir, out, m, before, after, scores, peaks, int(n), source, scores_from, skipped)


def _written(
    model_dir: Path,
    out: Path | None,
    m: dict,
    before: Calibration | None,
    after: Calibration,
    scores: np.ndarray,
    peaks: np.ndarray,
    images: int,
    source: str,
    scores_from: str,
    skipped: list[str],
    made: str | None = None,
    scores_restored: bool = True,
) -> Recalibrated:
    """Write the manifest ``m`` (over the model's, or into a copy at ``out``) and say what changed: what the thresholds
    before and after flag of the good ``scores``/``peaks`` in effect (of ``images`` good images), and whether the
    stored evaluation was made at another threshold."""
    metrics = m.get("metrics")
    threshold = metrics.get("threshold") if isinstance(metrics, dict) else None
    stale = threshold is not None and threshold != after.image_threshold
    written = rewrite_manifest(model_dir, m, out)
    known = before is not None and scores.size > 0
    return Recalibrated(
        written,
        before,
        after,
        source,
        images,
        skipped,
        int((scores >= before.image_threshold).sum()) if known else None,
        int((scores >= after.image_threshold).sum()),
        int((peaks >= before.pixel_threshold).sum()) if known else None,
        int((peaks >= after.pixel_threshold).sum()),
        stale,
        scores_from,
        made,
        scores_restored,
    )


def _bounded(history: list[dict]) -> list[dict]:
    """The newest ``HISTORY`` calibrations, the newest ``HISTORY_SCORES`` of them with scores keeping their scores."""
    history = history[-HISTORY:]
    with_scores = 0
    for i in range(len(history) - 1, -1, -1):
        if "scores" in history[i]:
            with_scores += 1
            if with_scores > HISTORY_SCORES:
                history[i] = {k: v for k, v in history[i].items() if k != "scores"}
    return history


def restore_calibration(model_dir: str | Path, out: str | Path | None = None) -> Recalibrated:
    """Go back to the calibration that the last recalibration of the model in ``model_dir`` replaced: its thresholds,
    and the good scores they were set from (where the history still keeps them; the drift watch and another rate then
    start from those). The calibration undone leaves the history, so a second call goes back one more. The manifest
    is rewritten whole (``out``: a copy of the model is written there instead)."""
    model_dir = Path(model_dir)
    m = read_manifest(model_dir)
    out = copy_target(model_dir, out)
    entry, history = previous_calibration(model_dir, m, "linewatch calibrate")
    try:
        earlier = Calibration.from_dict(entry["calibration"])
        before = Calibration.from_dict(m["calibration"]) if m.get("calibration") else None
    except (KeyError, TypeError, ModelFileError) as e:
        raise ModelFileError(f"{model_dir}: the manifest's calibration history is damaged ({e})") from None
    kept = entry.get("scores")
    # a calibration replaced by another rate alone was set from the scores still kept; one replaced by new images, from
    # the scores the entry keeps (dropped from entries older than HISTORY_SCORES)
    scores_restored = entry.get("by") != "images" or isinstance(kept, dict)
    if isinstance(kept, dict):
        m["calibration_scores"] = kept
    m["calibration"] = earlier.to_dict()
    m["calibration_history"] = history
    try:
        scores, peaks, n = _kept(model_dir, m)
    except LinewatchError:  # none kept (or damaged): the thresholds alone
        scores = peaks = np.empty(0)
        n = 0
    scores_from = str((m.get("calibration_scores") or {}).get("source") or "training") if n else "none"
    made = entry.get("made") if isinstance(entry.get("made"), str) else None
    return _written(
        model_dir, out, m, before, earlier, scores, peaks, int(n), "history", scores_from, [], made, scores_restored
    )
