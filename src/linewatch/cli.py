"""The linewatch command line."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from linewatch.console import Bars, err, out, user_errors
from linewatch.core.extras import require
from linewatch.core.modelfiles import check_target
from linewatch.core.options import with_params
from linewatch.errors import LinewatchError
from linewatch.vision.cpu import SEARCH_MODES
from linewatch.vision.methods import DEFAULT_METHOD, METHODS

app = typer.Typer(
    help="linewatch: learn good parts from photos, find and localise defects.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


Method = StrEnum("Method", {name: name for name in METHODS.names()})


def _methods_help() -> str:
    return "; ".join(f"{e.name}: {e.help}" for e in METHODS)


class Format(StrEnum):
    onnx = "onnx"


SearchMode = StrEnum("SearchMode", {m: m for m in SEARCH_MODES})  # PatchCore's bank search (export --search)


class Engine(StrEnum):
    auto = "auto"
    torch = "torch"
    onnx = "onnx"


class FailOn(StrEnum):
    never = "never"
    watch = "watch"
    drift = "drift"


def _search_hint(scorer, model: Path) -> None:
    """Say how to re-export an export whose bank search is not this CPU's fastest (``OnnxModel.search_hint``)."""
    hint = getattr(scorer, "search_hint", None)
    if hint:
        err.print(f"[yellow]{escape(hint.replace('MODEL', str(model)))}[/yellow]", highlight=False)


def _engine_model(model: Path, engine: Engine):
    from linewatch.vision.runtime import OnnxModel, open_model

    if engine is Engine.onnx:
        from linewatch.vision.manifest import read_manifest

        if "onnx" not in read_manifest(model).get("files", {}):
            raise LinewatchError(
                f"{model} has no ONNX export: run `linewatch export {model}` first, or use --engine torch"
            )
        return OnnxModel(model)
    return open_model(model, prefer_onnx=engine is Engine.auto)


def _px(candidate: dict) -> str:
    """ ", 320 px" for an automatic choice's candidate with its own input size (older manifests have none)."""
    size = candidate.get("image_size")
    return f", {size} px" if size else ""


def _few_held_out(det, out: Path) -> None:
    """Say so when the held-out good images are too few to hold the threshold to its false-alarm rate, and how to
    tighten it (``linewatch calibrate`` on more good parts)."""
    from linewatch.core.drift import rate_bound

    kept, cal = det.calibration_scores_, det.calibration_
    if not kept or cal is None or not kept.get("image"):
        return
    n = len(kept["image"])
    above = sum(s >= cal.image_threshold for s in kept["image"])
    bound = rate_bound(above, n)
    if bound > 2 * cal.false_alarm_rate:
        err.print(
            f"[yellow]the threshold rests on {n} held-out good images[/yellow]: its false-alarm rate may be up to "
            f"{bound:.1%} (95 %) rather than {cal.false_alarm_rate:.1%}; `linewatch calibrate {escape(str(out))} "
            "GOOD_IMAGES` on a few hundred good parts of the line tightens it",
            highlight=False,
        )


def _fmt(v) -> str:
    return "—" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


@app.command()
@user_errors
@with_params(METHODS)
def train(
    data: Annotated[Path, typer.Argument(help="MVTec-layout category, or a folder of good images")],
    out: Annotated[Path, typer.Option("--out", "-o", help="model directory to write")],
    method: Annotated[Method, typer.Option(help="detector: " + _methods_help())] = Method(DEFAULT_METHOD),
    evaluate_after: Annotated[
        bool, typer.Option("--evaluate", help="evaluate on DATA's test images and store the metrics")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    **params,
):
    """Learn what good parts look like from good images only."""
    require("vision", "linewatch train")
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.saving import create_detector, save

    check_target(out)  # a folder of other things is refused before the training, not after it
    ds = load_dataset(data)
    if not ds.train:
        raise LinewatchError(f"no good training images under {data} (expected train/good/ or images)")
    det = create_detector(method.value, **params)
    with Bars(quiet) as bars:
        det.fit(ds.train, progress=bars, fingerprint=ds.fingerprint())
        metrics = None
        if evaluate_after and ds.test:
            from linewatch.vision.evaluation import evaluate

            metrics = evaluate(det, ds, progress=bars)
    save(det, out, metrics)
    info = det.train_info_
    kept = getattr(det, "method_", None) or det.method  # a method choice says which candidate it kept
    err.print(
        f"trained {kept} on {info['train_images']} images in {info['seconds']:.1f} s; "
        + (
            f"threshold set on {info['holdout_images']} held-out good images -> {escape(str(out))}"
            if det.calibration_ is not None
            else f"no threshold (no held-out good images): images are scored, none is flagged -> {escape(str(out))}"
        ),
        highlight=False,
    )
    _few_held_out(det, out)
    if det.input_shape_:
        h, w = det.input_shape_
        err.print(
            f"input {w}x{h} pixels (width x height), following the training images' median aspect ratio "
            f"{info['median_aspect']:.2f} (--no-keep-aspect squashes them to a square)",
            highlight=False,
        )
    area = det.inspection_area()
    if area is not None:
        err.print(
            f"inspection area: {area.mean():.0%} of each photo is inspected, the rest ignored "
            f"({escape(str(det.get_params()['inspect_area']))}; the model keeps a copy)",
            highlight=False,
        )
    auto = info.get("auto")
    if auto:
        chosen = auto["chosen"]
        err.print(
            f"automatic choice ({auto['mode']}, {auto['seconds']:.1f} s in all): bank {chosen['bank']} entries, "
            f"layers {','.join(chosen['layers'])}{_px(chosen)}: {auto['reason']}",
            highlight=False,
        )
        sized = auto.get("size_choice")
        if sized:
            err.print(
                f"input size chosen on {sized['train_images']} training images and {sized['held_out_images']} "
                f"held-out ones painted ({sized['seconds']:.1f} s): {sized['reason']}",
                highlight=False,
            )
        for c in auto["candidates"]:
            pixel = f", pixel {c['pixel_auroc']:.3f}" if c["pixel_auroc"] is not None else ""
            image = f"image {c['image_auroc']:.3f}{pixel}" if c["image_auroc"] is not None else "not checked"
            err.print(
                f"  strides {','.join(map(str, c['strides']))}, bank {c['bank']}{_px(c)}: self-check {image}",
                highlight=False,
            )
    search = info.get("search")
    if search:
        err.print(f"bank search: {search['chosen']}, {search['reason']} (--search picks another)", highlight=False)
    combined = info.get("combined")
    if combined:
        err.print(
            f"combined: PaDiM fitted beside PatchCore in {combined['padim_seconds']:.1f} s; the image score adds both, "
            "each over its own threshold; the map is PatchCore's",
            highlight=False,
        )
        share = combined.get("share_choice")
        if share:
            shares = ", ".join(f"{c['share']:g}: {c['image_auroc']:.3f}" for c in share["candidates"])
            err.print(
                f"PaDiM's share in the image score: {share['share']:g}, {share['reason']} (self-check by share: "
                f"{shares})",
                highlight=False,
            )
    choice = info.get("method_choice")
    if choice:
        err.print(
            f"method chosen: {choice['chosen']} ({choice['seconds']:.1f} s for both): {choice['reason']}",
            highlight=False,
        )
        for c in choice["candidates"]:
            pixel = f", pixel {c['pixel_auroc']:.3f}" if c["pixel_auroc"] is not None else ""
            image = f"image {c['image_auroc']:.3f}{pixel}" if c["image_auroc"] is not None else "not checked"
            bank = f", bank {c['bank']}" if c["bank"] else ""
            err.print(f"  {c['method']}{bank}: self-check {image}", highlight=False)
    if det.skipped_:
        first = escape(str(det.skipped_[0]))
        err.print(f"[yellow]skipped {len(det.skipped_)} unreadable images[/yellow], e.g. {first}", highlight=False)
    check = info.get("self_check")
    if check:
        pixel = f", pixel AUROC {check['pixel_auroc']:.3f}" if check.get("pixel_auroc") is not None else ""
        err.print(
            f"self-check: {check['painted']} copies of {check['good']} held-out good images with defects painted on "
            f"them are told apart with image AUROC {check['image_auroc']:.3f}{pixel} "
            f"({info['self_check_seconds']:.1f} s)",
            highlight=False,
        )
    if metrics:
        _print_metrics(metrics)


def _print_metrics(m: dict) -> None:
    t = Table(title="evaluation")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in (
        "images",
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "f1_max",
        "false_alarm_rate",
        "miss_rate",
        "ms_per_image",
    ):
        t.add_row(k, _fmt(m.get(k)))
    out.print(t)
    if m.get("unmasked"):
        err.print(
            f"note: {m['unmasked']} of {m['defective']} defective images have no mask under ground_truth/: they are "
            "left out of pixel_auroc and aupro",
            highlight=False,
            soft_wrap=True,
        )
    if m.get("per_type"):
        pt = Table(title="per defect type")
        for c in ("type", "images", "image_auroc", "pixel_auroc", "aupro", "miss_rate"):
            pt.add_column(c, justify="right" if c != "type" else "left")
        for kind, row in m["per_type"].items():
            pt.add_row(
                escape(kind),  # a folder's name: it may hold [brackets]
                *(_fmt(row.get(c)) for c in ("images", "image_auroc", "pixel_auroc", "aupro", "miss_rate")),
            )
        out.print(pt)


@app.command()
@user_errors
def evaluate(
    model: Annotated[Path, typer.Argument(help="model directory")],
    data: Annotated[Path, typer.Argument(help="MVTec-layout category (or good/ + defect folders)")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    engine: Annotated[Engine, typer.Option(help="auto uses the ONNX export when there is one")] = Engine.auto,
    store: Annotated[bool, typer.Option(help="store the metrics in the model's manifest")] = True,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="also write a report here: index.html with every image's score against the threshold, the ROC "
            "curve, heatmaps of the worst misses, and scores.csv",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
):
    """Image AUROC, pixel AUROC, AUPRO, F1-max and error rates on labelled test images."""
    require("vision", "linewatch evaluate")
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.evaluation import evaluate as run_evaluation
    from linewatch.vision.manifest import MANIFEST, read_manifest, write_json_atomic

    if report is not None:
        from linewatch.vision.report import check_target

        check_target(report)  # before the evaluation's minutes, not after
    scorer = _engine_model(model, engine)
    _search_hint(scorer, model)
    ds = load_dataset(data)
    scored: list = []
    with Bars(quiet or as_json) as bars:
        metrics = run_evaluation(scorer, ds, progress=bars, scored=scored)
    metrics["engine"] = "onnx" if type(scorer).__name__ == "OnnxModel" else "torch"
    if report is not None:
        _write_report(report, scorer, metrics, scored, quiet or as_json)
    if store:
        manifest = read_manifest(model)
        manifest["metrics"] = {**metrics, "data": str(Path(data).resolve())}
        write_json_atomic(Path(model) / MANIFEST, manifest)
    if as_json:
        sys.stdout.write(json.dumps(metrics) + "\n")
    else:
        _print_metrics(metrics)


def _write_report(folder: Path, scorer, metrics: dict, scored: list, quiet: bool) -> None:
    from linewatch.vision.images import open_image
    from linewatch.vision.overlay import save_overlay
    from linewatch.vision.report import write_report

    area = scorer.inspection_area()

    def overlays(paths: list[Path], targets: list[Path]) -> None:
        where = dict(zip(map(str, paths), targets, strict=True))
        for pred in scorer.iter_predict(paths):
            save_overlay(open_image(pred.path), pred, scorer.calibration_, where[str(pred.path)], area)

    written = write_report(folder, metrics, scored, metrics.get("threshold"), overlays)
    if not quiet:
        err.print(f"report: {escape(str(written / 'index.html'))}", highlight=False)


class _Names:
    """How a table names images: relative to the folder they all lie in, which a line above the table names, so that
    a narrow terminal never cuts off the part that tells them apart (a path column folds onto more lines rather than
    end in an ellipsis)."""

    def __init__(self, paths: list[Path]):
        self.folder: str | None = None
        try:
            common = os.path.commonpath([str(Path(p).parent) for p in paths]) if paths else ""
        except ValueError:  # absolute and relative paths mixed
            common = ""
        if common not in ("", "."):
            self.folder = common

    def __call__(self, path: str | Path | None) -> str:
        if path is None:
            return "?"
        name = str(path)
        if self.folder is not None:
            with contextlib.suppress(ValueError):  # a name outside the folder (an unreadable one's) stays whole
                name = str(Path(path).relative_to(self.folder))
        return escape(name)  # a file name may hold [brackets], which Rich would read as markup

    def table(self, first: str, *columns: str) -> Table:
        return Table(Column(first, overflow="fold"), *(Column(c, no_wrap=True) for c in columns))

    def heading(self, what: str) -> None:
        """A line naming the folder the names are relative to (whole: the terminal wraps it), if there is one."""
        if self.folder is not None:
            out.print(f"{what} in {escape(self.folder)}", soft_wrap=True, highlight=False)

    def print(self, table: Table, what: str = "images") -> None:
        self.heading(what)
        out.print(table)


@app.command("batch")
@user_errors
def batch_cmd(
    model: Annotated[Path, typer.Argument(help="model directory")],
    images: Annotated[list[Path], typer.Argument(help="image files or folders (searched below them too)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON lines to write, one per image")],
    resume: Annotated[
        bool, typer.Option("--resume", help="OUT exists: skip the images it holds and append the others")
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="score on Ray: local (a Ray instance on this machine), auto (the cluster this node belongs to) or "
            "ray://HEAD:10001; the images must be readable by every node",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ray actors at most (default: one per CPU)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
):
    """Score an archive of images (thousands to millions) into JSON lines that an interrupted run resumes from
    (--resume); on a Ray cluster with --ray. Unreadable images get a line with their error, and the run goes on."""
    require("vision" if ray is None else "batch", "linewatch batch" if ray is None else "linewatch batch --ray")
    from linewatch.vision.batch import score_archive
    from linewatch.vision.datasets import expand_inputs

    paths = expand_inputs(images)
    with Bars(quiet) as bars:
        done = score_archive(model, paths, out, resume=resume, ray_address=ray, workers=workers, progress=bars)
    rate = f", {done.scored / done.seconds:.1f} images/s" if done.scored and done.seconds > 0 else ""
    err.print(
        f"scored {done.scored} images ({done.anomalous} anomalous, {done.unreadable} unreadable"
        + (f", {done.already} done by an earlier run" if done.already else "")
        + f") in {done.seconds:.1f} s on {done.where}, {done.workers} worker{'s' if done.workers != 1 else ''}"
        + f"{rate} -> {escape(str(done.out))}",
        highlight=False,
    )


@app.command("calibrate")
@user_errors
def calibrate_cmd(
    model: Annotated[Path, typer.Argument(help="model directory")],
    images: Annotated[
        list[Path] | None,
        typer.Argument(
            help="good images the model was not trained on (files or folders); none: another --false-alarm-rate "
            "from the held-out good scores kept at the last calibration"
        ),
    ] = None,
    false_alarm_rate: Annotated[
        float | None,
        typer.Option(help="share of good parts flagged (0.01 is 1 %); default: the model's current rate"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write a copy of the model here; MODEL is left as it is")
    ] = None,
    undo: Annotated[
        bool,
        typer.Option(
            "--undo",
            help="go back to the thresholds the last calibration replaced (and the good scores they came from); "
            "again to go further back",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
):
    """Set a model's thresholds again without training: from good images of today (new lighting, a new batch of
    parts, a camera moved) or at another false-alarm rate. What the model learned is untouched; the manifest keeps the
    thresholds it replaces, and --undo goes back to them.

    Unreadable images are named on stderr and left out; the exit status is then 2."""
    from linewatch.vision.datasets import expand_inputs
    from linewatch.vision.recalibration import recalibrate, restore_calibration

    if undo:
        if images or false_alarm_rate is not None:
            raise LinewatchError(
                "--undo goes back to the thresholds the last calibration replaced: give it no images and no "
                "--false-alarm-rate"
            )
        done = restore_calibration(model, out)
        if as_json:
            sys.stdout.write(json.dumps(done.to_dict()) + "\n")
        else:
            _print_recalibration(done)
        return
    for folder in images or []:
        labelled = [d for d in ("good", "train", "test") if (folder / d).is_dir()]
        if folder.is_dir() and labelled:  # defects would be taken for good parts and raise the thresholds
            raise LinewatchError(
                f"{folder} holds labelled images ({'/, '.join(labelled)}/ and others): name the folder of good images "
                f"alone, e.g. {folder / ('test/good' if 'test' in labelled else 'good')}"
            )
    paths = expand_inputs(images) if images else None
    unreadable = _Unreadable()
    with Bars(quiet or as_json) as bars:
        done = recalibrate(model, paths, false_alarm_rate, out, bars, unreadable)
    unreadable.went_on()  # names the images left out, if any
    if as_json:
        sys.stdout.write(json.dumps(done.to_dict()) + "\n")
    else:
        _print_recalibration(done)
    if paths is not None:
        unreadable.finish(len(paths), "used")


@app.command("drift")
@user_errors
def drift_cmd(
    model: Annotated[Path, typer.Argument(help="model directory")],
    images: Annotated[
        list[Path], typer.Argument(help="recent images of parts as they came off the line (files or folders)")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    fail_on: Annotated[
        FailOn, typer.Option(help="exit with status 1 at this level or worse (for a scheduled check)")
    ] = FailOn.never,
):
    """Do recent images still score and look as the good images the model's thresholds were set on? Says ok, watch or
    drift (a change of light, a moved camera, a lens out of focus, another batch of material), with the figures and
    what to do: check the light and the camera, or `linewatch calibrate` on today's good parts. Defects among the
    images are expected; 30 images at least.

    Unreadable images are named on stderr and left out; the exit status is then 2. With --fail-on watch (or drift)
    the status is 1 when the level is that or worse."""
    from linewatch.vision.datasets import expand_inputs
    from linewatch.vision.recalibration import watch_drift

    paths = expand_inputs(images)
    unreadable = _Unreadable()
    with Bars(quiet or as_json) as bars:
        found = watch_drift(model, paths, bars, unreadable)
    if found.recent == 0:
        unreadable.none_of_all()  # none could be read: an error naming them, not a table of nothing
    unreadable.went_on()
    if as_json:
        sys.stdout.write(json.dumps(found.to_dict()) + "\n")
    else:
        colour = {"ok": "green", "watch": "yellow", "drift": "red"}.get(found.level, "white")
        t = Table(title=f"drift watch of {escape(str(model))}", title_justify="left")
        t.add_column("")
        t.add_column("value", justify="right")
        t.add_row("level", f"[{colour}]{found.level}[/{colour}]")
        t.add_row("recent images / reference good scores", f"{found.recent} / {found.reference}")
        for label, v, fmt in (
            ("shift AUROC (0.5: unmoved)", found.shift_auroc, "{:.3f}"),
            ("p-value", found.p_value, "{:.1e}"),
            ("recent median's percentile in the reference", found.median_percentile, "{:.0f}"),
            ("flagged", found.flagged_share, "{:.1%}"),
            ("false-alarm rate promised", found.promised_rate, "{:.1%}"),
            ("look AUROC (0.5: unmoved; towards 1: looks otherwise)", found.look_auroc, "{:.3f}"),
            ("brightness change of the median", found.brightness_change, "{:+.1%}"),
            ("brightness AUROC (0.5: unmoved)", found.brightness_auroc, "{:.3f}"),
        ):
            t.add_row(label, "-" if v is None else fmt.format(v))
        out.print(t)
        err.print(found.reason, highlight=False)
        if found.farthest and found.look_level in ("watch", "drift"):
            err.print("the photos that look least like the good ones (distance to the nearest good photo):")
            for f in found.farthest:
                err.print(f"  {escape(str(f['name']))}  {f['distance']:.3f}", highlight=False)
    unreadable.finish(len(paths), "compared")
    levels = ("watch", "drift")
    if fail_on is not FailOn.never and found.level in levels[levels.index(fail_on.value) :]:
        raise typer.Exit(1)


def _print_recalibration(done) -> None:
    b, a = done.before, done.after
    if done.source == "history":
        source = None
    elif done.source == "images":
        source = f"{done.images} good images scored now"
    elif done.scores_from == "training":
        source = f"the scores it kept of the {done.images} good images held out at training"
    else:
        source = f"the scores it kept of the {done.images} good images of its last calibration"
    t = Table(title=f"thresholds of {escape(str(done.model_dir))}", title_justify="left")
    t.add_column("")
    t.add_column("before", justify="right")
    t.add_column("after", justify="right")
    t.add_row("false-alarm rate", f"{b.false_alarm_rate:g}" if b else "-", f"{a.false_alarm_rate:g}")
    t.add_row("image threshold (raw score)", f"{b.image_threshold:.4f}" if b else "-", f"{a.image_threshold:.4f}")
    t.add_row("pixel threshold (raw map)", f"{b.pixel_threshold:.4f}" if b else "-", f"{a.pixel_threshold:.4f}")
    n = done.images
    if n:
        t.add_row(
            f"of the {n} good images: flagged",
            "-" if done.flagged_before is None else f"{done.flagged_before} ({done.flagged_before / n:.1%})",
            f"{done.flagged_after} ({done.flagged_after / n:.1%})",
        )
        t.add_row(
            f"of the {n} good images: with regions",
            "-" if done.regions_before is None else str(done.regions_before),
            str(done.regions_after),
        )
    out.print(t)
    if source is None:  # --undo
        made = f" made {done.made}" if done.made else ""
        err.print(f"back to the thresholds{made} that the last calibration replaced", highlight=False)
        if not done.scores_restored:
            err.print(
                "[yellow]the good scores they were set from are no longer kept[/yellow] (the history keeps the "
                "newest few): the drift watch and another --false-alarm-rate use the later ones",
                highlight=False,
            )
    else:
        kept = "; the previous ones are kept in the manifest's history" if b else " (the model had none)"
        err.print(f"thresholds set from {source}{kept}", highlight=False)
    if done.stale_metrics:
        err.print(
            "[yellow]the evaluation stored in the model was made at the previous threshold[/yellow]: run "
            "linewatch evaluate again for its error rates at the new one",
            highlight=False,
        )


def _heatmap_names(out_dir: Path, image: Path) -> tuple[Path, Path]:
    """Where ``predict --out`` writes an image's heatmap: by its name, or with its folder's name too when another
    image of the same name was scored (and its heatmap written) already."""
    return out_dir / f"{image.stem}_heatmap.png", out_dir / f"{image.parent.name}_{image.stem}_heatmap.png"


@app.command()
@user_errors
def predict(
    model: Annotated[Path, typer.Argument(help="model directory")],
    images: Annotated[list[Path], typer.Argument(help="image files or folders")],
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="write heatmap overlays (PNG) here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per image")] = False,
    engine: Annotated[Engine, typer.Option(help="auto uses the ONNX export when there is one")] = Engine.auto,
):
    """Score images: verdict, scores and defect regions; heatmap overlays with --out.

    An image that cannot be read (a truncated or corrupt file) is named on stderr and the others are still scored;
    the exit status is then 2, as when nothing could be scored."""
    from linewatch.vision.datasets import expand_inputs
    from linewatch.vision.images import open_image
    from linewatch.vision.overlay import save_overlay

    scorer = _engine_model(model, engine)
    _search_hint(scorer, model)
    area = scorer.inspection_area() if out_dir is not None else None
    paths = expand_inputs(images)
    if out_dir is not None:  # a heatmap is never written over an image being scored (a folder scored into itself)
        inputs = {Path(p).resolve() for p in paths}
        for p in paths:
            for target in _heatmap_names(out_dir, Path(p)):
                if target.resolve() in inputs:
                    raise LinewatchError(
                        f"the heatmap of {p} would be written over {target}, one of the images scored: "
                        "choose another --out folder"
                    )
    names = _Names(paths)
    table = None if as_json else names.table("image", "verdict", "score", "normalised", "regions")
    unreadable = _Unreadable(
        None if table is None else lambda name: table.add_row(names(name), "unreadable", "-", "-", "-")
    )

    for pred in scorer.iter_predict(paths, unreadable=unreadable):
        unreadable.went_on()
        rec = pred.to_dict()
        if out_dir is not None:
            target, qualified = _heatmap_names(out_dir, Path(pred.path))
            if target.exists() and sum(p.stem == Path(pred.path).stem for p in paths) > 1:
                target = qualified
            save_overlay(open_image(pred.path), pred, scorer.calibration_, target, area)
            rec["heatmap"] = str(target)
        if as_json:
            sys.stdout.write(json.dumps(rec) + "\n")
            sys.stdout.flush()
        else:
            table.add_row(
                names(pred.path),
                "[red]anomalous[/red]" if pred.is_anomalous else pred.verdict,
                f"{pred.score:.4f}",
                "-" if math.isnan(pred.normalized_score) else f"{pred.normalized_score:.3f}",
                str(len(pred.regions)),
            )
    unreadable.none_of_all()
    if table is not None:
        names.print(table)
    unreadable.finish(len(paths), "scored")


class _Unreadable:
    """The images a command over many went on without (``iter_predict``'s ``unreadable``): each named on stderr once
    an image got through (when none does, ``none_of_all``'s error names them) and, with ``row``, added to the output
    table; ``finish`` ends the command with exit 2 when there were any."""

    def __init__(self, row: Callable[[str], object] | None = None):
        self.why: list[str] = []
        self.told = 0
        self.done = 0
        self.row = row

    def __call__(self, name: str | None, why: str) -> None:
        self.why.append(why)
        if self.row is not None:
            self.row(name or "?")
        if self.done:
            self._tell()

    def went_on(self) -> None:
        """One more image got through."""
        self.done += 1
        self._tell()

    def _tell(self) -> None:
        for why in self.why[self.told :]:
            err.print(f"[yellow]skipped[/yellow] {escape(why)}", highlight=False, soft_wrap=True)
        self.told = len(self.why)

    def none_of_all(self) -> None:
        if self.why and not self.done:
            named = "; ".join(self.why[:3]) + ("; ..." if len(self.why) > 3 else "")
            raise LinewatchError(
                named if len(self.why) == 1 else f"none of the {len(self.why)} images can be read: {named}"
            )

    def finish(self, total: int, done: str) -> None:
        if self.why:
            ok = total - len(self.why)
            err.print(
                f"[red]error:[/red] {len(self.why)} of {total} images could not be read (named above); "
                f"{ok} {'other was' if ok == 1 else 'others were'} {done}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2)


@app.command()
@user_errors
def export(
    model: Annotated[Path, typer.Argument(help="model directory")],
    fmt: Annotated[Format, typer.Option("--format", help="export format")] = Format.onnx,
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="file to write (default: MODEL/model.onnx)")
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(help="also write the export as one zip (manifest and graphs) to score with on another machine"),
    ] = None,
    search: Annotated[
        SearchMode | None,
        typer.Option(
            help="PatchCore's bank search for the CPU the model will run on (auto: this CPU's; int8 where it has "
            "VNNI, else pca); the model's manifest takes it too. Default: the model's own"
        ),
    ] = None,
):
    """Export the whole scoring path to ONNX; predict then uses it (ONNX Runtime, no torch needed)."""
    require("vision", "linewatch export")
    from linewatch.vision.export import export_onnx

    if bundle is not None and out_file is not None:
        raise LinewatchError("--bundle zips the model directory's own export: leave out --out")
    if bundle is not None and not bundle.parent.is_dir():
        raise LinewatchError(f"cannot write {bundle}: {bundle.parent} is not a folder")
    if bundle is not None:
        import zipfile

        from linewatch.vision.export import check_replaceable

        check_replaceable(bundle, ".zip", "a zip file", zipfile.is_zipfile)
    path = export_onnx(model, out_file, search=search.value if search else None)
    err.print(f"exported {fmt.value} -> {escape(str(path))}", highlight=False)
    if bundle is not None:
        from linewatch.vision.bundle import write_bundle

        written = write_bundle(model, bundle)
        err.print(f"bundle (unzip, then linewatch predict DIR) -> {escape(str(written))}", highlight=False)


@app.command()
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="where the demo writes its data and model")] = Path(
        "linewatch-demo"
    ),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
):
    """The main job on embedded defaults: make a synthetic dataset, train, evaluate, export, predict."""
    require("vision", "linewatch demo")
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.evaluation import evaluate as run_evaluation
    from linewatch.vision.export import export_onnx
    from linewatch.vision.images import open_image
    from linewatch.vision.overlay import save_overlay
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.saving import create_detector, save
    from linewatch.vision.synthetic import make_dataset

    started = time.perf_counter()
    data = workdir / "data" / "washer"
    if not (data / "train" / "good").is_dir():
        err.print(f"generating a synthetic dataset in {escape(str(data))}", highlight=False)
        make_dataset(data)
    ds = load_dataset(data)
    det = create_detector(DEFAULT_METHOD)
    with Bars(quiet) as bars:
        det.fit(ds.train, progress=bars, fingerprint=ds.fingerprint())
        metrics = run_evaluation(det, ds, progress=bars)
    model = save(det, workdir / "model", metrics)
    export_onnx(model)
    onnx = OnnxModel(model)
    heatmaps = workdir / "heatmaps"
    shown = [s.path for s in ds.test if s.is_anomalous][::4] + [s.path for s in ds.test if not s.is_anomalous][:2]
    flagged = 0
    for pred in onnx.iter_predict(shown):
        name = f"{Path(pred.path).parent.name}_{Path(pred.path).stem}_heatmap.png"
        save_overlay(open_image(pred.path), pred, onnx.calibration_, heatmaps / name, onnx.inspection_area())
        flagged += pred.is_anomalous
    _print_metrics(metrics)
    out.print(f"model: {escape(str(model))} (with ONNX export)", highlight=False)
    out.print(f"heatmaps: {escape(str(heatmaps))}/ ({len(shown)} images, {flagged} flagged)", highlight=False)
    out.print(f"done in {time.perf_counter() - started:.0f} s")


INSPECT_BATCH_IMAGES = 8
INSPECT_BATCH_BYTES = 16 * 1024 * 1024


def _batches(paths: list[Path]):
    """Consecutive runs of paths small enough for one upload (the server caps request size)."""
    batch, size = [], 0
    for p in paths:
        n = p.stat().st_size
        if batch and (len(batch) >= INSPECT_BATCH_IMAGES or size + n > INSPECT_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(p)
        size += n
    if batch:
        yield batch


@app.command("inspect")
@user_errors
def inspect_cmd(
    images: Annotated[list[Path], typer.Argument(help="image files or folders")],
    server: Annotated[str, typer.Option("--server", help="the service's URL, e.g. http://linewatch:8000")],
    station: Annotated[str | None, typer.Option(help="station whose active model scores the images")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="LINEWATCH_API_KEY", help="API key (operator role)")] = None,
    token: Annotated[str | None, typer.Option(help="login token, instead of an API key")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per image")] = False,
):
    """Send images to a running inspection service: verdict, scores and defect regions, stored for review."""
    require("client", "linewatch inspect")
    try:
        from linewatch.client import Client
    except ImportError:
        raise LinewatchError("inspect needs httpx: pip install 'linewatch[runtime]'") from None
    from linewatch.vision.datasets import expand_inputs

    if not station:
        raise LinewatchError("--station is required: the station whose active model scores the images")
    if not api_key and not token:
        raise LinewatchError("authenticate with --api-key (or LINEWATCH_API_KEY) or --token")
    paths = expand_inputs(images)
    names = _Names(paths)
    table = None if as_json else names.table("image", "verdict", "score", "normalised", "regions", "id")
    unreadable = _Unreadable(
        None if table is None else lambda name: table.add_row(names(name), "unreadable", "-", "-", "-", "-")
    )
    with Client(server, token=token, api_key=api_key) as client:
        for batch in _batches(paths):
            for path, rec in _inspected(client, station, batch, unreadable):
                unreadable.went_on()
                if as_json:
                    sys.stdout.write(json.dumps({"path": str(path), **rec}) + "\n")
                    sys.stdout.flush()
                else:
                    verdict = rec["verdict"]
                    table.add_row(
                        names(path),
                        f"[red]{verdict}[/red]" if verdict == "anomalous" else verdict,
                        f"{rec['score']:.4f}",
                        f"{rec['normalized_score']:.3f}",
                        str(len(rec["regions"])),
                        str(rec["id"]),
                    )
    unreadable.none_of_all()
    if table is not None:
        names.print(table)
    unreadable.finish(len(paths), "stored")


#: what the service answers for a request with an image it cannot take (unreadable, corrupt or too large)
_REFUSED_IMAGE = (400, 413)


def _inspected(client, station: str, batch: list[Path], unreadable: _Unreadable):
    """(path, inspection) of a batch of uploads. The service stores a request's images all or none: when it refuses
    the batch for an image, each is sent again on its own (nothing of the batch was stored) and the ones refused are
    told to ``unreadable``; any other error ends the run."""
    from linewatch.client import ClientError

    try:
        yield from zip(batch, client.inspect(station, batch), strict=True)
        return
    except ClientError as e:
        if e.status_code not in _REFUSED_IMAGE:
            raise
        if len(batch) == 1:
            unreadable(str(batch[0]), f"{batch[0]}: {e.detail}")
            return
    for path in batch:
        yield from _inspected(client, station, [path], unreadable)


search_app = typer.Typer(
    help="Defect search over folders of images: index them, then find the nearest defects to new ones.",
    no_args_is_help=True,
)
app.add_typer(search_app, name="search")


class Level(StrEnum):
    region = "region"
    image = "image"


@search_app.command("index")
@user_errors
def search_index(
    data: Annotated[Path, typer.Argument(help="MVTec-layout category or folders of images (folder name = label)")],
    model: Annotated[Path, typer.Option("--model", "-m", help="trained model directory that embeds the images")],
    out: Annotated[Path, typer.Option("--out", "-o", help="index directory to write (replaced when it exists)")],
    level: Annotated[
        Level, typer.Option(help="region: one point per defect region (or anomaly peak); image: whole images")
    ] = Level.region,
    engine: Annotated[Engine, typer.Option(help="auto uses the ONNX export when it has embeddings")] = Engine.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
):
    """Embed every image under DATA with MODEL into a search index at OUT (faiss HNSW)."""
    require("vision", "linewatch search index")
    from linewatch.search.offline import index_folder

    started = time.perf_counter()
    with Bars(quiet) as bars:
        index = index_folder(data, model, out, level.value, engine.value, lambda s, d, t: bars("embed", d, t))
    err.print(
        f"indexed {index.info['images']} images ({index.count()} {level.value} vectors of {index.dim} dimensions) "
        f"in {time.perf_counter() - started:.1f} s -> {escape(str(out))}",
        highlight=False,
    )
    skipped = index.info.get("skipped") or []
    for why in skipped[:10]:
        err.print(f"skipped: {escape(str(why))}", highlight=False, soft_wrap=True)
    if len(skipped) > 10:
        err.print(f"skipped {len(skipped) - 10} more unreadable images", highlight=False)


@search_app.command("query")
@user_errors
def search_query(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="index directory from `linewatch search index`")],
    images: Annotated[list[Path], typer.Argument(help="query image files or folders")],
    k: Annotated[int, typer.Option("--k", "-k", help="neighbours per query image")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per query image")] = False,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="embed with this model, not the index's")] = None,
    engine: Annotated[Engine, typer.Option(help="auto uses the ONNX export when it has embeddings")] = Engine.auto,
):
    """The K nearest indexed images to each query image (by their most similar defect regions)."""
    require("vision", "linewatch search query")
    from linewatch.search.offline import open_offline_index, query_images
    from linewatch.vision.datasets import expand_inputs

    index = open_offline_index(index_dir)
    paths = expand_inputs(images)
    names = _Names(paths)
    rows: list[tuple] = []  # (query, rank, neighbour path or None for an unreadable query, label, similarity, region)
    unreadable = _Unreadable(None if as_json else lambda name: rows.append((names(name), "", None, "", "", "")))
    for path, found in query_images(index, paths, k, model, engine.value, unreadable=unreadable):
        unreadable.went_on()
        if as_json:
            rec = {"query": path, "neighbors": [n.to_dict() for n in found]}
            sys.stdout.write(json.dumps(rec) + "\n")
            sys.stdout.flush()
            continue
        for rank, n in enumerate(found, 1):
            region = "—" if n.region is None else ",".join(map(str, n.region))
            query = names(path) if rank == 1 else ""
            rows.append((query, str(rank), str(n.path), escape(str(n.label)), f"{n.similarity:.3f}", region))
    unreadable.none_of_all()
    if not as_json:
        # the neighbours named within the folder they share too, which a line above the table names
        near = _Names([Path(r[2]) for r in rows if r[2] is not None])
        table = Table(
            Column("query", overflow="fold"),
            Column("#", no_wrap=True),
            Column("neighbour", overflow="fold"),
            Column("label", overflow="fold"),
            Column("similarity", no_wrap=True),
            Column("region", no_wrap=True),
        )
        for query, rank, neighbour, *rest in rows:
            table.add_row(query, rank, "unreadable" if neighbour is None else near(neighbour), *rest)
        near.heading("neighbours")
        names.print(table, "queries")
    unreadable.finish(len(paths), "searched")


@search_app.command("rebuild")
@user_errors
def search_rebuild(
    data_dir: Annotated[Path | None, typer.Option(help="the service's data dir")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
):
    """Rebuild the service's search index from its database (the source of truth): every inspection's stored
    vectors. With the embedded index (faiss) stop the service first; a Qdrant index can be rebuilt any time."""
    require("service", "linewatch search rebuild")
    require("vision", "linewatch search rebuild")
    from linewatch.services.searching import SearchHub
    from linewatch.store.db import make_engine, migrate, session_factory

    settings = _settings(data_dir)
    engine = make_engine(settings.db_url)
    migrate(engine)
    hub = SearchHub(settings, session_factory(engine))
    started = time.perf_counter()
    with hub.exclusive(), Bars(quiet) as bars:
        got = hub.reconcile(lambda done, total: bars("index", done, total), rebuild=True)
    engine.dispose()
    err.print(f"indexed {got['added']} inspections in {time.perf_counter() - started:.1f} s", highlight=False)


users_app = typer.Typer(help="Users of the inspection service.", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _settings(data_dir: Path | None):
    from pydantic import ValidationError

    from linewatch.config import Settings

    try:
        return Settings(data_dir=data_dir) if data_dir else Settings()
    except ValidationError as e:  # env vars or the config file: one line, the first error (never the value)
        errors = e.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ())]
        where = f"setting {loc[0]} (LINEWATCH_{loc[0].upper()})" if len(loc) == 1 else "settings"
        if len(loc) > 1:
            where = f"setting {'.'.join(loc)}"
        msg = " ".join(str(first.get("msg", e)).removeprefix("Value error, ").split())
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise LinewatchError(f"invalid {where}: {msg}{more}") from None
    except Exception as e:  # an unreadable config file
        raise LinewatchError(f"invalid settings: {' '.join(str(e).split())}") from None


def _check_port(host: str, port: int) -> None:
    """A user error, before anything starts, when the service could not listen on host:port (the port taken by
    another program, an address this machine does not have, a port below 1024 without the right to it)."""
    import errno
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise LinewatchError(f"--host {host}: not an address of this machine ({e})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(addr)
        except OSError as e:
            why = {
                errno.EADDRINUSE: "the port is in use (another linewatch or program): choose another --port",
                errno.EADDRNOTAVAIL: "this machine has no such address: choose another --host",
                errno.EACCES: "permission denied (ports below 1024 need privileges): choose another --port",
            }.get(e.errno, e.strerror)
            raise LinewatchError(f"cannot listen on {host}:{port}: {why}") from None


@app.command()
@user_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="database, images, models; default ./linewatch-data")] = None,
):
    """Start the inspection service (API, events, jobs) on embedded defaults: SQLite and files under the data dir.

    Production parts come from settings (env vars or a TOML file named by LINEWATCH_CONFIG):
    LINEWATCH_DATABASE_URL=postgresql+psycopg://user@host/db, LINEWATCH_BLOB_URL=s3://bucket/prefix with
    LINEWATCH_S3_ENDPOINT_URL, LINEWATCH_S3_ACCESS_KEY, LINEWATCH_S3_SECRET_KEY.
    """
    require("service", "linewatch serve")
    require("vision", "linewatch serve")
    import uvicorn

    from linewatch.api.app import build_context, create_app
    from linewatch.api.server import http_protocol

    _check_port(host, port)
    settings = _settings(data_dir)
    context = build_context(settings)
    app_ = create_app(settings, context)
    docs = {"public": "API docs at /docs", "auth": "API docs at /docs, signed in", "off": "API docs off"}
    err.print(
        f"linewatch serving on http://{host}:{port} (data in {escape(str(settings.data_dir.resolve()))}; "
        f"{docs[settings.docs_access]})",
        highlight=False,
    )
    # requests the HTTP parser refuses are answered in JSON too
    uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False, http=http_protocol())


@app.command()
@user_errors
def worker(
    data_dir: Annotated[Path | None, typer.Option(help="the service's data dir (shared storage: models)")] = None,
    threads: Annotated[int, typer.Option(min=1, max=64, help="jobs run at once by this process")] = 1,
):
    """Run training jobs from the job queue (LINEWATCH_QUEUE_URL=redis://... or amqp://...) until SIGINT/SIGTERM.

    Same settings as the service: its database, blob store and data dir; the models dir (DATA_DIR/models) must
    be storage shared with the service, mounted at the same path. Start as many workers as you like.
    """
    require("service", "linewatch worker")
    require("vision", "linewatch worker")
    import logging

    from linewatch.services.jobqueue import run_worker

    settings = _settings(data_dir)
    if not settings.queue_url:
        raise LinewatchError(
            "linewatch worker needs a job queue: set LINEWATCH_QUEUE_URL=redis://host:6379/0 "
            "or amqp://user:password@host:5672/vhost (the service's setting)"
        )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("linewatch").setLevel(logging.INFO)
    run_worker(settings, threads, announce=lambda line: err.print(line, highlight=False, soft_wrap=True))


@users_app.command("create")
@user_errors
def users_create(
    name: Annotated[str, typer.Argument(help="user name")],
    role: Annotated[str, typer.Option(help="admin, engineer, operator or viewer")] = "viewer",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="the service's data dir")] = None,
):
    """Create a user (the first admin bootstraps the service). There is no default password."""
    require("service", "linewatch users create")
    from sqlalchemy.exc import IntegrityError

    from linewatch.services.accounts import create_user
    from linewatch.store.db import make_engine, migrate, session_factory

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    settings = _settings(data_dir)
    engine = make_engine(settings.db_url)
    migrate(engine)
    try:
        with session_factory(engine)() as s, s.begin():
            create_user(s, name, password, role)
    except ValueError as e:
        raise LinewatchError(str(e)) from None
    except IntegrityError:
        raise LinewatchError(f"user {name!r} already exists") from None
    err.print(f"created {role} {escape(repr(name))}", highlight=False)


machines_app = typer.Typer(help="Lines, machines and sensors of the line service.", no_args_is_help=True)
app.add_typer(machines_app, name="machines")


@machines_app.command("import")
@user_errors
def machines_import(
    file: Annotated[Path, typer.Argument(help="YAML or JSON: lines with their machines and sensors")],
    data_dir: Annotated[Path | None, typer.Option(help="the service's data dir")] = None,
):
    """Create or update lines, machines and sensors from a definition file (nothing is deleted).

    \b
    lines:
      - name: line-1
        machines:
          - name: press-1
            type: hydraulic press
            stations: [camera-1]
            sensors:
              - {name: oil_temp, unit: degC, low: 20, high: 90}
    """
    require("service", "linewatch machines import")
    from linewatch.core.events import EventBus
    from linewatch.services.machines import import_spec, parse_import
    from linewatch.store.db import make_engine, migrate, session_factory

    try:
        data = file.read_bytes()
    except OSError as e:
        raise LinewatchError(f"cannot read {file}: {e.strerror or e}") from None
    spec = parse_import(data, str(file))
    settings = _settings(data_dir)
    engine = make_engine(settings.db_url)
    migrate(engine)
    with session_factory(engine)() as s:
        got = import_spec(s, EventBus(), spec)
    engine.dispose()
    err.print(
        f"{len(got['created'])} machines created, {len(got['updated'])} updated "
        f"({got['lines']} lines in {escape(str(file))})",
        highlight=False,
    )


@machines_app.command("list")
@user_errors
def machines_list(data_dir: Annotated[Path | None, typer.Option(help="the service's data dir")] = None):
    """The machines, their line, sensors, health and active model."""
    require("service", "linewatch machines list")
    from linewatch.services.machines import line_names, list_machines, sensors_of
    from linewatch.store.db import make_engine, migrate, session_factory

    settings = _settings(data_dir)
    engine = make_engine(settings.db_url)
    migrate(engine)
    table = Table("machine", "line", "type", "sensors", "health", "model")
    with session_factory(engine)() as s:
        lines = line_names(s)
        for m in list_machines(s):
            sensors = ", ".join(x.name for x in sensors_of(s, m.id))
            health = "—" if m.health is None else f"{m.health:.2f}"
            table.add_row(m.name, lines.get(m.line_id, ""), m.type, sensors, health, _fmt(m.active_model_id))
    engine.dispose()
    out.print(table)


@machines_app.command("import-model")
@user_errors
def machines_import_model(
    machine: Annotated[str, typer.Argument(help="the machine whose next model version it becomes")],
    model_dir: Annotated[Path, typer.Argument(help="the folder `linewatch sensors fit --out` wrote")],
    data_dir: Annotated[Path | None, typer.Option(help="the service's data dir")] = None,
):
    """A table model fitted with `linewatch sensors fit` as the machine's next model version, ready to activate
    (machine page, or POST /api/v1/machine-models/{id}/activate). Its sensors must be the machine's, by name."""
    require("service", "linewatch machines import-model")
    from linewatch.core.modelfiles import zip_dir
    from linewatch.services.machine_models import import_model
    from linewatch.store.db import make_engine, migrate, session_factory

    if not (model_dir / "manifest.json").is_file():
        raise LinewatchError(f"{model_dir} is not a model folder (no manifest.json): `linewatch sensors fit --out`")
    settings = _settings(data_dir)
    engine = make_engine(settings.db_url)
    migrate(engine)
    try:
        mm = import_model(
            session_factory(engine), settings.models_dir, machine, f"{model_dir.name}.zip", zip_dir(model_dir), None
        )
    finally:
        engine.dispose()
    what = f"{machine}: version {mm.version} (model #{mm.id}, {mm.method} over {', '.join(mm.sensors)})"
    out.print(f"{escape(what)} is ready; activate it to score the readings", highlight=False)


from linewatch.core.registry_cli import app as registry_app  # noqa: E402
from linewatch.maintenance.cli import app as maintenance_app  # noqa: E402 - the engines' sub-apps need the above
from linewatch.scheduling.cli import schedule_app  # noqa: E402
from linewatch.sensors.cli import app as sensors_app  # noqa: E402
from linewatch.twin.cli import plant_app, twin_app  # noqa: E402

app.add_typer(sensors_app, name="sensors")
app.add_typer(schedule_app, name="schedule")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(twin_app, name="twin")
app.add_typer(plant_app, name="plant")
app.add_typer(registry_app, name="registry")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
