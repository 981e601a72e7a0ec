"""`linewatch registry ...`: push any engine's model to an MLflow Model Registry, pull a version back by number or
alias, list what is registered (``linewatch.core.modelregistry``). Registered on the root app in ``linewatch.cli``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from linewatch.console import err, out, user_errors

app = typer.Typer(
    help="Model versions in an MLflow Model Registry (MLFLOW_TRACKING_URI, or --tracking-uri).", no_args_is_help=True
)

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI: http://mlflow:5000, or sqlite:///PATH/mlflow.db (default: MLFLOW_TRACKING_URI)",
    ),
]


# the figures `list` shows of a version's metrics, by their short names
SHOWN = {
    "image_auroc": "image AUROC",
    "pixel_auroc": "pixel",
    "aupro": "AUPRO",
    "rmse": "RMSE",
    "roc_auc": "ROC-AUC",
    "f1": "F1",
    "threshold": "threshold",
}


def _quiet_mlflow() -> None:
    """MLflow's own notes (its database's set-up) off: the command says what it did. After MLflow's import, which
    sets its loggers' levels."""
    from linewatch.core.extras import missing

    if not missing("registry"):
        import mlflow  # noqa: F401
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command("push")
@user_errors
def push_cmd(
    model: Annotated[Path, typer.Argument(help="model directory (vision, sensors or maintenance)")],
    name: Annotated[str, typer.Option(help="registered model name, e.g. bottle-cam1")],
    alias: Annotated[str | None, typer.Option(help="point this alias at the new version, e.g. production")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of the run that holds the files")] = "linewatch",
    description: Annotated[str | None, typer.Option(help="the version's description")] = None,
    tracking_uri: TrackingUri = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
):
    """Register MODEL as a new version of NAME: its files (checked against its manifest first), its evaluation
    metrics and its parameters, in an MLflow run."""
    from linewatch.core.modelregistry import push

    _quiet_mlflow()
    done = push(model, name, tracking_uri, alias, experiment, description)
    if as_json:
        print(json.dumps(done.to_dict()))
        return
    shown = ", ".join(f"{k} {v:.4g}" for k, v in done.metrics.items() if "." not in k)
    err.print(
        f"registered {escape(done.name)} version {done.version} ({done.engine}"
        + (f", {escape(str(done.method))}" if done.method else "")
        + f"; run {done.run_id})"
        + (f", alias {escape(done.alias)}" if done.alias else "")
        + f" in {escape(done.tracking_uri)}"
        + (f"\n{escape(shown)}" if shown else ""),
        highlight=False,
    )


@app.command("pull")
@user_errors
def pull_cmd(
    ref: Annotated[str, typer.Argument(help="NAME (its newest version), NAME/VERSION or NAME@ALIAS")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="model directory to write")],
    tracking_uri: TrackingUri = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
):
    """Download a registered version into OUT, checked file by file against its manifest; an earlier model there is
    replaced only once the new one is complete (a folder of other things never is)."""
    from linewatch.core.modelregistry import pull

    _quiet_mlflow()
    done = pull(ref, out_dir, tracking_uri)
    if as_json:
        print(json.dumps(done.to_dict()))
        return
    aliases = f" ({', '.join(done.aliases)})" if done.aliases else ""
    err.print(
        f"pulled {escape(done.name)} version {done.version}{escape(aliases)}: {done.engine}"
        + (f" {escape(str(done.method))}" if done.method else "")
        + f", {done.files} file{'s' if done.files != 1 else ''} checked -> {escape(done.out)}",
        highlight=False,
    )


@app.command("list")
@user_errors
def list_cmd(
    name: Annotated[str | None, typer.Argument(help="a registered model: its versions (default: every model)")] = None,
    tracking_uri: TrackingUri = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per version on stdout")] = False,
):
    """A registered model's versions, newest first (or every model's newest version): aliases, engine, method, when,
    and the figures of its evaluation."""
    from linewatch.core.modelregistry import versions

    _quiet_mlflow()
    rows = versions(name, tracking_uri)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    if not rows:
        err.print("no registered model", highlight=False)
        return
    table = Table("model", "version", "aliases", "engine", "method", "registered", "figures")
    for r in rows:
        figures = ", ".join(f"{SHOWN[k]} {r['metrics'][k]:.4g}" for k in SHOWN if k in r["metrics"])
        table.add_row(
            escape(r["name"]),
            str(r["version"]),
            escape(", ".join(r["aliases"])),
            escape(r["engine"] or ""),
            escape(r["method"] or ""),
            r["created"][:10],
            escape(figures),
        )
    out.print(table)
