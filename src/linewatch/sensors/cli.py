"""`linewatch sensors ...`: fit a detector on normal sensor data, score new data (JSON lines with the sensors
behind each alert), evaluate against labels, list the methods. Heavy imports (pandas, PyOD) happen inside the
commands, so `linewatch --help` stays fast. Registered on the root app in ``linewatch.cli``."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from linewatch.console import err, out, user_errors
from linewatch.core.modelfiles import check_target
from linewatch.core.options import with_params
from linewatch.errors import LinewatchError
from linewatch.sensors.methods import METHODS

app = typer.Typer(
    help="Sensor anomaly detection: learn normal machine behaviour, score new readings.", no_args_is_help=True
)


def _columns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise LinewatchError("--columns names no column")
    twice = sorted({c for c in cols if cols.count(c) > 1})
    if twice:
        raise LinewatchError(f"--columns names {', '.join(map(repr, twice))} twice: each sensor once")
    return cols


def _load_model(model: Path):
    from linewatch.core.extras import require

    require("sensors", "linewatch sensors")
    from linewatch.sensors.saving import load

    return load(model)


def _series(data: Path, det, time_column: str | None, label_column: str | None = None):
    from linewatch.sensors.tables import load_series

    m = det.manifest_
    time_column = time_column if time_column is not None else m["info"].get("time_column")
    return load_series(data, columns=list(m["sensors"]), time_column=time_column, label_column=label_column)


@app.command("fit")
@user_errors
@with_params(METHODS)
def fit(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file, or a folder of them, of normal operation")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="model directory to write")],
    method: Annotated[str, typer.Option(help="detector (linewatch sensors methods)")] = "mahalanobis",
    columns: Annotated[str | None, typer.Option(help="sensor columns, comma separated (default: all numeric)")] = None,
    time_column: Annotated[
        str | None,
        typer.Option(help="time column: order checked, gaps detected (default: a column named time, timestamp, ...)"),
    ] = None,
    **params,
):
    """Learn normal behaviour; the threshold is set on the last rows held out from the fit."""
    from linewatch.core.extras import require

    require("sensors", "linewatch sensors")
    from linewatch.sensors.saving import save
    from linewatch.sensors.tables import load_series

    det = METHODS[method].load()(**params)
    check_target(out_dir)  # a folder of other things is refused before the data is read
    t0 = time.perf_counter()
    series = load_series(data, columns=_columns(columns), time_column=time_column, find_time=True)
    det.fit([(s.values, s.times) for s in series], sensors=series[0].sensors)
    rows = sum(len(s.values) for s in series)
    save(det, out_dir, {"time_column": series[0].time_column, "rows": rows, "files": len(series)})
    if time_column is None and series[0].time_column is not None:
        err.print(f"time column: {escape(series[0].time_column)} (its name; --time-column to choose)", highlight=False)
    const = [s for s, c in zip(det.pipeline_.sensors_, det.pipeline_.constant_, strict=True) if c]
    err.print(
        f"fitted {method} on {rows} rows of {len(det.sensors)} sensors in {time.perf_counter() - t0:.1f} s; "
        f"threshold {det.threshold_:.4g} at {det.params_['false_alarm_rate']:.1%} false alarms on "
        f"{det.holdout_rows_} held-out rows -> {escape(str(out_dir))}",
        highlight=False,
    )
    if const:
        err.print(f"[yellow]constant in training, left out:[/yellow] {escape(', '.join(const))}", highlight=False)


def _records(det, series):
    """Per row: time, score, is_anomaly, and the top sensors (for every row, so a consumer can rank)."""
    for s in series:
        feats = det.pipeline_.transform(s.values, s.times)
        scores = det.score_features(feats)
        top = det.top_contributors(det.attribution(feats))
        for stamp, sc, t in zip(s.stamps, scores, top, strict=True):
            yield (
                s,
                {
                    "time": _plain(stamp),
                    "score": round(float(sc), 6),
                    "is_anomaly": bool(sc > det.threshold_),
                    "sensors": t,
                },
            )


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@app.command("score")
@user_errors
def score(
    model: Annotated[Path, typer.Argument(help="model directory from `linewatch sensors fit`")],
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file, or a folder of them")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per row on stdout")] = False,
    time_column: Annotated[str | None, typer.Option(help="time column (default: the one used in fit)")] = None,
):
    """Score every row; alerts name the sensors that contributed most."""
    det = _load_model(model)
    series = _series(data, det, time_column)
    multi = len(series) > 1
    n = alerts = 0
    for s, rec in _records(det, series):
        n += 1
        alerts += rec["is_anomaly"]
        if multi:
            rec["file"] = s.name
        if as_json:
            print(json.dumps(rec))
        elif rec["is_anomaly"]:
            who = ", ".join(f"{x['sensor']} {x['share']:.0%}" for x in rec["sensors"])
            out.print(f"{escape(str(rec['time']))}  score {rec['score']:.4g}  {escape(who)}", highlight=False)
    err.print(f"{alerts} of {n} rows anomalous (threshold {det.threshold_:.4g})", highlight=False)


@app.command("evaluate")
@user_errors
def evaluate(
    model: Annotated[Path, typer.Argument(help="model directory from `linewatch sensors fit`")],
    data: Annotated[Path, typer.Argument(help="labelled CSV or Parquet file, or a folder of them")],
    labels: Annotated[str, typer.Option(help="label column: 1 (or >0) marks an anomalous row")],
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as one JSON object")] = False,
    time_column: Annotated[str | None, typer.Option(help="time column (default: the one used in fit)")] = None,
):
    """Precision, recall, F1, false-alarm rate (FAR) and missed-alarm rate (MAR) of the model's alerts."""
    import numpy as np

    from linewatch.sensors.metrics import alarm_metrics

    det = _load_model(model)
    series = _series(data, det, time_column, label_column=labels)
    pred = np.concatenate([det.predict(s.values, s.times) for s in series])
    truth = np.concatenate([s.labels for s in series])
    m = alarm_metrics(truth, pred)
    if as_json:
        print(json.dumps(m))
        return
    for k, v in m.items():
        out.print(f"{k:>10}  {v:.4f}" if isinstance(v, float) else f"{k:>10}  {v}", highlight=False)


@app.command("calibrate")
@user_errors
def calibrate_cmd(
    model: Annotated[Path, typer.Argument(help="model directory from `linewatch sensors fit`")],
    data: Annotated[
        Path | None,
        typer.Argument(
            help="CSV or Parquet file, or a folder of them, of normal operation the model was not fitted on"
        ),
    ] = None,
    false_alarm_rate: Annotated[
        float | None,
        typer.Option(help="share of normal rows flagged (0.01 is 1 %); default: the model's current rate"),
    ] = None,
    time_column: Annotated[str | None, typer.Option(help="time column (default: the one used in fit)")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="write a copy of the model here; MODEL is left as it is")
    ] = None,
    undo: Annotated[
        bool,
        typer.Option("--undo", help="go back to the threshold the last calibration replaced; again to go further back"),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
):
    """Set a sensor model's threshold again without fitting it: from recent normal operation (a sensor replaced, a
    season's temperatures, another material) or at another false-alarm rate. What the model learned is untouched;
    the manifest keeps the threshold it replaces, and --undo goes back to it."""
    from linewatch.sensors.calibration import recalibrate, restore_threshold

    if undo:
        if data is not None or false_alarm_rate is not None:
            raise LinewatchError(
                "--undo goes back to the threshold the last calibration replaced: give it no data and no "
                "--false-alarm-rate"
            )
        _load_model(model)  # a model this installation can load, before its manifest is rewritten
        done = restore_threshold(model, out_dir)
        if as_json:
            print(json.dumps(done.to_dict()))
        else:
            err.print(
                f"threshold {done.threshold_before:.4g} -> {done.threshold_after:.4g} at {done.false_alarm_rate:.1%} "
                f"false alarms: back to the threshold the last calibration replaced -> {escape(done.model)}",
                highlight=False,
            )
        return
    if data is None:
        raise LinewatchError("give a file or folder of normal operation to calibrate on (or --undo)")
    det = _load_model(model)
    series = _series(data, det, time_column)
    done = recalibrate(model, [(s.values, s.times) for s in series], false_alarm_rate, out_dir, det=det)
    if as_json:
        print(json.dumps(done.to_dict()))
        return
    n = done.rows
    err.print(
        f"threshold {done.threshold_before:.4g} -> {done.threshold_after:.4g} at {done.false_alarm_rate:.1%} false "
        f"alarms (x {done.margin:g} margin), set on {n} rows of normal operation; of those rows the old threshold "
        f"flags {done.flagged_before} ({done.flagged_before / n:.1%}), the new one {done.flagged_after} "
        f"({done.flagged_after / n:.1%}) -> {escape(done.model)}",
        highlight=False,
    )


@app.command("methods")
def methods():
    """The detectors by name, with their parameters."""
    from linewatch.sensors.methods import METHODS, SensorParams

    shared = set(SensorParams.specs())
    for e in METHODS:
        own = [n for n in e.params.specs() if n not in shared]
        out.print(f"[bold]{e.name}[/bold]: {e.help}" + (f" (parameters: {', '.join(own)})" if own else ""))
    out.print("every method also takes: " + ", ".join(SensorParams.specs()))
