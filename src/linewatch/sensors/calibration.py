"""Setting a sensor model's threshold again without fitting it again: from rows of normal operation it was not
fitted on (a sensor replaced, a season's temperatures, a new batch of material), or at another false-alarm rate.
What the model learned (its features' scaling, the fitted detector, the check rows that prove it on every load) is
untouched; the manifest is rewritten whole with the threshold it replaces kept in ``calibration_history``, or the
model is copied to ``out`` with the new threshold."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from linewatch.core.modelfiles import (
    calibration_history,
    check_false_alarm_rate,
    copy_target,
    previous_calibration,
    read_manifest,
    rewrite_manifest,
)
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.thresholds import calibrate

MIN_ROWS = 50  # as for fitting: fewer rows cannot hold a threshold at a useful false-alarm rate
HISTORY = 20  # thresholds replaced, kept in the manifest


@dataclass
class SensorRecalibrated:
    """What a recalibration did: the threshold before and after, and how many of the normal rows each flags."""

    model: str  # the folder written (the model's own, or the copy)
    threshold_before: float
    threshold_after: float
    false_alarm_rate_before: float
    false_alarm_rate: float
    rows: int  # normal rows scored (each sensor file's rows, all of them)
    flagged_before: int  # of those rows, how many the old threshold calls anomalous
    flagged_after: int
    margin: float  # the model's threshold_margin, applied as at fit
    source: str = "rows"  # "rows" scored now, or "history": back to the threshold the last calibration replaced

    def to_dict(self) -> dict:
        return asdict(self)


def recalibrate(
    model_dir: str | Path,
    parts: list[tuple[np.ndarray, np.ndarray | None]],
    false_alarm_rate: float | None = None,
    out: str | Path | None = None,
    det=None,
) -> SensorRecalibrated:
    """Set the threshold of the sensor model in ``model_dir`` (``det``: the same, loaded already) at
    ``false_alarm_rate`` (default: the rate it was set at) from its scores on ``parts`` of normal operation
    (``(values, times)`` each, columns in the model's sensor order), times the model's ``threshold_margin`` as at
    fit. Writes the model's manifest whole, or a copy of the model to ``out`` (the model's folder left as it is)."""
    from linewatch.sensors.saving import FORMAT_VERSION, load

    model_dir = Path(model_dir)
    if det is None:
        det = load(model_dir)
    out = copy_target(model_dir, out)
    params = det.params_
    before_rate = float(params["false_alarm_rate"])
    rate = check_false_alarm_rate(before_rate if false_alarm_rate is None else false_alarm_rate)
    rows = sum(len(v) for v, _ in parts)
    if rows < MIN_ROWS:
        raise LinewatchError(f"calibrating needs at least {MIN_ROWS} rows of normal operation; got {rows}")
    scores = np.concatenate([det.score(v, t) for v, t in parts])
    finite = scores[np.isfinite(scores)]
    if finite.size < MIN_ROWS:
        raise LinewatchError(
            f"only {finite.size} of the {rows} rows could be scored (a sensor without readings, or rows too few for "
            f"the model's windows); calibrating needs at least {MIN_ROWS}"
        )
    margin = float(params["threshold_margin"])
    before = float(det.threshold_)
    after = float(calibrate(finite, rate) * margin)

    m = read_manifest(model_dir, engine="sensors", format_version=FORMAT_VERSION)  # as it is now
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    history = calibration_history(m)
    # the record of the calibration replaced goes with it (None: the threshold set at fit), to go back to
    history.append(
        {"threshold": before, "false_alarm_rate": before_rate, "replaced": now, "calibration": m.get("calibration")}
    )
    m["calibration_history"] = history[-HISTORY:]
    m["threshold"] = after
    m["params"] = {**m["params"], "false_alarm_rate": rate}
    m["calibration"] = {"source": "rows", "rows": int(finite.size), "false_alarm_rate": rate, "at": now}
    written = rewrite_manifest(model_dir, m, out)
    return SensorRecalibrated(
        str(written),
        before,
        after,
        before_rate,
        rate,
        int(finite.size),
        int((finite > before).sum()),
        int((finite > after).sum()),
        margin,
    )


def restore_threshold(model_dir: str | Path, out: str | Path | None = None) -> SensorRecalibrated:
    """Go back to the threshold (and false-alarm rate) that the last recalibration of the sensor model in
    ``model_dir`` replaced; the calibration undone leaves the history, so a second call goes back one more. Writes
    the manifest whole, or a copy of the model to ``out``."""
    from linewatch.sensors.saving import FORMAT_VERSION

    model_dir = Path(model_dir)
    m = read_manifest(model_dir, engine="sensors", format_version=FORMAT_VERSION, required=("params", "threshold"))
    out = copy_target(model_dir, out)
    entry, history = previous_calibration(model_dir, m, "linewatch sensors calibrate")
    try:
        threshold = float(entry["threshold"])
        rate = check_false_alarm_rate(entry["false_alarm_rate"])
        before, before_rate = float(m["threshold"]), float(m["params"]["false_alarm_rate"])
        margin = float(m["params"].get("threshold_margin", 1.0))
        if not np.isfinite(threshold):
            raise ValueError(f"threshold {threshold}")
    except (KeyError, TypeError, ValueError, LinewatchError) as e:
        raise ModelFileError(f"{model_dir}: the manifest's calibration history is damaged ({e})") from None
    m["threshold"] = threshold
    m["params"] = {**m["params"], "false_alarm_rate": rate}
    # the record of the calibration gone back to: kept with it since this version; before, only fit's is known
    record = entry.get("calibration", {"source": "history"} if history else None)
    if record is None:
        m.pop("calibration", None)  # the threshold set at fit
    else:
        m["calibration"] = record
    m["calibration_history"] = history
    written = rewrite_manifest(model_dir, m, out)
    return SensorRecalibrated(str(written), before, threshold, before_rate, rate, 0, 0, 0, margin, "history")
