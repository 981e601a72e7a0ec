"""``linewatch maintenance``: fit, predict and evaluate remaining-useful-life and failure-risk models."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from linewatch.console import err, out, user_errors
from linewatch.core.extras import require
from linewatch.core.modelfiles import check_target
from linewatch.core.options import with_params
from linewatch.errors import LinewatchError
from linewatch.maintenance.methods import METHODS, TARGET_METHOD

app = typer.Typer(
    help="Predictive maintenance: remaining useful life with intervals, failure risk.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Target(StrEnum):
    rul = "rul"
    failure = "failure"


Method = StrEnum("Method", {name: name for name in METHODS.names()})


@app.command("fit")
@user_errors
@with_params(METHODS)
def fit(
    data: Annotated[Path, typer.Argument(help="training data: C-MAPSS text, CSV or Parquet")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="model directory to write")],
    target: Annotated[Target, typer.Option(help="rul: run-to-failure histories; failure: labelled readings")] = (
        Target.rul
    ),
    method: Annotated[Method | None, typer.Option(help="default: the target's (cnn for rul, boosted for failure)")] = (
        None
    ),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    **params,
):
    """Learn a model: RUL from run-to-failure histories (unit, cycle, settings, sensors), or failure risk from
    readings with 0/1 failure labels (rows in time order)."""
    require("maintenance", "linewatch maintenance")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from linewatch.maintenance.saving import save

    name = str(method) if method else TARGET_METHOD[target]
    if (name == "cnn") != (target is Target.rul):
        raise LinewatchError(f"the {name} method does not predict --target {target}")
    model = METHODS.create(name, **params)
    model._validate_params()  # a bad option is reported before the data is read
    check_target(out_dir)  # ... and a folder of other things in the way
    if name == "cnn":
        from linewatch.maintenance.rul import as_histories

        histories = as_histories(data)  # read (and refused) before the progress bar starts
        _note_filled(histories.filled)
        with Progress(
            "training", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=quiet
        ) as bar:
            task = bar.add_task("train", total=None)
            model.fit(histories, progress=lambda _s, done, total: bar.update(task, completed=done, total=total))
    else:
        from linewatch.maintenance.failure import as_table

        table = as_table(data)  # read once
        model.fit(table)
        _note_missing(model.missing_readings(table))
        _note_unlabelled(model.train_info_.get("unlabelled_rows", 0), "training")
    save(model, out_dir)
    info = model.train_info_
    err.print(f"saved {name} model to {escape(str(out_dir))} ({info['seconds']} s)", highlight=False)


def _note_filled(n: int) -> None:
    if n:
        err.print(
            f"note: {n} empty reading(s) filled from the same unit's neighbouring cycles (the last reading before "
            "each, or the first after it at the start of a life)",
            highlight=False,
        )


def _note_missing(n: int) -> None:
    if n:
        err.print(
            f"note: {n} empty reading(s) taken as missing values (the trees learn where they go)", highlight=False
        )


def _note_unlabelled(n: int, what: str) -> None:
    if n:
        err.print(f"note: {n} row(s) without a failure label left out of the {what}", highlight=False)


def _histories(model, data: Path):
    """The RUL model's histories of ``data``, read once (a note when empty readings were filled)."""
    from linewatch.maintenance.rul import as_histories

    h = as_histories(data, sensor_names=model.sensor_names_, setting_names=model.setting_names_)
    _note_filled(h.filled)
    return h


def _load(model_dir: Path):
    from linewatch.maintenance.saving import load

    return load(model_dir)


@app.command("predict")
@user_errors
def predict(
    model_dir: Annotated[Path, typer.Argument(help="model directory")],
    data: Annotated[Path, typer.Argument(help="data: C-MAPSS text, CSV or Parquet")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    all_cycles: Annotated[bool, typer.Option("--all-cycles", help="RUL at every cycle, not only the last")] = False,
):
    """RUL with its interval at each unit's last cycle, or the failure probability of each row."""
    require("maintenance", "linewatch maintenance")
    model = _load(model_dir)
    if model.method == "cnn":
        records = model.predict(_histories(model, data), all_cycles=all_cycles).records()
        columns = ["unit", "cycle", "rul", "rul_low", "rul_high"]
    else:
        from linewatch.maintenance.failure import as_table

        table = as_table(data)
        _note_missing(model.missing_readings(table))
        records = model.predict(table).records()
        columns = ["unit", "failure_probability", *(["modes"] if records and "modes" in records[0] else [])]
    if as_json:
        for rec in records:
            print(json.dumps(rec))
        return
    table = Table(*columns)
    for rec in records:
        table.add_row(*(json.dumps(rec[c]) if isinstance(rec[c], dict) else f"{rec[c]:g}" for c in columns))
    out.print(table)


@app.command("evaluate")
@user_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="model directory")],
    data: Annotated[Path, typer.Argument(help="test data")],
    truth: Annotated[
        Path | None,
        typer.Option(
            help="true RUL per unit (C-MAPSS RUL_FDxxx.txt or unit,rul table); failure models read the labels from DATA"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the figures as one JSON object")] = False,
):
    """RUL: RMSE, NASA score and interval coverage at each unit's last cycle. Failure: ROC-AUC, PR-AUC, recall,
    precision and Brier score of any failure and of each mode."""
    require("maintenance", "linewatch maintenance")
    from linewatch.maintenance.metrics import failure_metrics, rul_metrics

    model = _load(model_dir)
    if model.method == "cnn":
        if truth is None:
            raise LinewatchError("a RUL model is evaluated against --truth FILE (true RUL per unit)")
        from linewatch.maintenance.tables import read_truth

        p = model.predict(_histories(model, data))
        result = rul_metrics(p.rul, p.rul_low, p.rul_high, read_truth(truth, p.unit))
        result["nominal_coverage"] = model.params_["coverage"]
    else:
        from linewatch.maintenance.failure import as_table

        df = as_table(data)
        _note_missing(model.missing_readings(df))
        p = model.predict(df)
        for c in (model.target_, *model.modes_):
            if c not in df.columns:
                raise LinewatchError(f"{data} has no label column {c!r} to evaluate against")
        known = ~df[[model.target_, *model.modes_]].isna().any(axis=1).to_numpy()
        _note_unlabelled(int((~known).sum()), "figures")
        if not known.any():
            raise LinewatchError(f"{data}: no row has a label in {model.target_!r} to evaluate against")
        result = {"failure": failure_metrics(p.probability[known], df[model.target_].to_numpy()[known])}
        result.update({m: failure_metrics(p.modes[m][known], df[m].to_numpy()[known]) for m in model.modes_})
    if as_json:
        print(json.dumps(result))
        return
    table = Table("figure", "value")
    for k, v in result.items():
        table.add_row(k, json.dumps(v) if isinstance(v, dict) else f"{v:.4g}")
    out.print(table)
