"""Sensor models on disk: a directory with ``manifest.json`` (method, resolved parameters, the feature pipeline's
learned scaling, the threshold) and NumPy arrays (``allow_pickle=False``): the training features the model is
rebuilt from, and a few held-out rows with the scores they had at save time.

Why rebuild instead of serialising the fitted PyOD / scikit-learn object: those objects only serialise through
pickle, which runs code on load. Every method here fits deterministically from its features and seed, so the
rebuilt model is the same model; the stored check rows prove it on every load, and a library upgrade that would
change the scores is refused with a clear message instead of silently scoring differently.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from linewatch import __version__
from linewatch.core.modelfiles import (
    add_file_entry,
    checked_file,
    read_manifest,
    replace_dir,
    staging_dir,
    write_json_atomic,
)
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.features import FeaturePipeline

FORMAT_VERSION = 1
ARRAYS = ("train_features", "check_features", "check_scores")


def save(det, out: Path, info: dict | None = None) -> Path:
    """Write ``det`` (fitted) to the directory ``out``, atomically (an existing model is replaced when complete)."""
    det._check_fitted()
    out = Path(out)
    stage = staging_dir(out)
    manifest = {
        "engine": "sensors",
        "format_version": FORMAT_VERSION,
        "linewatch_version": __version__,
        "method": det.method,
        "params": det.config(),
        "sensors": det.pipeline_.sensors_,
        "constant_sensors": [s for s, c in zip(det.pipeline_.sensors_, det.pipeline_.constant_, strict=True) if c],
        "pipeline": det.pipeline_.state(),
        "threshold": det.threshold_,
        "holdout_rows": det.holdout_rows_,
        "info": info or {},
    }
    try:
        for key in ARRAYS:
            path = stage / f"{key}.npy"
            np.save(path, np.ascontiguousarray(getattr(det, f"{key}_"), dtype=np.float64), allow_pickle=False)
            add_file_entry(manifest, key, path)
        write_json_atomic(stage / "manifest.json", manifest)
        replace_dir(stage, out)
    except BaseException:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def load(model_dir: Path):
    """The detector saved in ``model_dir``, rebuilt and checked against its stored scores."""
    from linewatch.sensors.methods import METHODS

    model_dir = Path(model_dir)
    m = read_manifest(
        model_dir,
        engine="sensors",
        format_version=FORMAT_VERSION,
        required=("files", "method", "params", "pipeline", "threshold"),
    )
    try:
        det = METHODS.create(m["method"], **m["params"])
        det.params_ = det._validate_params()
        arrays = {}
        for key in ARRAYS:
            try:
                arrays[key] = np.load(checked_file(model_dir, m, key), allow_pickle=False)
            except ValueError as e:
                raise ModelFileError(f"{model_dir}: {key}.npy is not a plain array ({e})") from None
        try:
            det.pipeline_ = FeaturePipeline.from_state(m["pipeline"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{model_dir}: the manifest's pipeline is incomplete ({e})") from None
        det.train_features_ = arrays["train_features"]
        det.model_ = det._fit_model(det.train_features_)
        det.threshold_ = float(m["threshold"])
        det.holdout_rows_ = int(m.get("holdout_rows", 0))
        det.check_features_, det.check_scores_ = arrays["check_features"], arrays["check_scores"]
        again = det.score_features(det.check_features_)
        if not np.allclose(again, det.check_scores_, rtol=1e-6, atol=1e-9 * max(1.0, abs(det.threshold_))):
            raise ModelFileError(
                f"{model_dir}: the {det.method} model rebuilt by this installation scores its check rows differently "
                f"from when it was saved (linewatch {m.get('linewatch_version', '?')}); a library version changed: "
                "retrain it with `linewatch sensors fit`"
            )
        # the pipeline's state must turn readings into features as at training (a tampered window or centre would
        # only fail when the first readings come)
        pipe, n_features = det.pipeline_, det.train_features_.shape[1]
        rows = np.zeros((64, len(pipe.sensors_)))
        probes = [pipe.transform(rows, None), pipe.transform(rows, np.arange(64, dtype=float))]
        sizes = {len(pipe.sensors_)} | {np.size(getattr(pipe, a)) for a in ("center_", "scale_") if hasattr(pipe, a)}
        sizes_f = {n_features} | {
            np.size(getattr(pipe, a)) for a in ("feature_mean_", "feature_scale_") if hasattr(pipe, a)
        }
        if len(sizes) > 1 or len(sizes_f) > 1 or any(x.shape[1] != n_features for x in probes):
            raise ValueError("its pipeline's sensors, features and stored rows do not agree")
        if not math.isfinite(det.threshold_):
            raise ValueError(f"its threshold is {det.threshold_}")
        listed = m.get("sensors", pipe.sensors_)
        if not isinstance(listed, list) or [str(x) for x in listed] != list(pipe.sensors_):
            raise ValueError("its list of sensors is not the pipeline's")
    except LinewatchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        why = f"{type(e).__name__}: {e}"
        raise ModelFileError(f"{model_dir}: the model is incomplete or inconsistent ({why})") from None
    det.manifest_ = m
    return det
