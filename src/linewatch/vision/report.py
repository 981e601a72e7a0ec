"""An evaluation a person can look at: every test image's score against the threshold, the ROC curve, and the
misses (defects scored good, good parts flagged) with their heatmaps, in one folder opened through ``index.html``.

Written by ``linewatch evaluate --report DIR``. The folder is built beside its place and moved there whole, so a
report is never half-written; an existing folder is replaced only when it holds a report (its ``index.html`` and
``scores.csv``), never a folder of something else."""

from __future__ import annotations

import csv
import html
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linewatch.core import modelfiles
from linewatch.errors import LinewatchError, ModelFileError

LIMIT = 12  # misses of each kind shown with their heatmaps, the worst first
GOOD = "good"
REPORT_FILES = ("index.html", "scores.csv")  # what marks a folder as a report that may be replaced
# ... and all a report holds: a folder with anything else in it (a note, a photo) is a user's, never replaced
REPORT_PARTS = {*REPORT_FILES, "scores.png", "roc.png", "misses", "examples"}


class ReportError(LinewatchError):
    """A report that cannot be written where it was asked for."""


@dataclass(frozen=True)
class Scored:
    path: Path
    label: str  # "good" or the defect type
    score: float  # the raw image score, on the threshold's scale


def misses(rows: Sequence[Scored], threshold: float | None, limit: int | None = LIMIT) -> tuple[list[int], list[int]]:
    """The indices of the defective images scored below the threshold, lowest first, and of the good images at or
    above it, highest first: at most ``limit`` of each (None: all). None without a threshold."""
    if threshold is None:
        return [], []
    missed = [i for i, r in enumerate(rows) if r.label != GOOD and r.score < threshold]
    alarms = [i for i, r in enumerate(rows) if r.label == GOOD and r.score >= threshold]
    missed.sort(key=lambda i: rows[i].score)
    alarms.sort(key=lambda i: -rows[i].score)
    return missed[:limit], alarms[:limit]


def examples(rows: Sequence[Scored], threshold: float | None) -> list[int]:
    """One defective image of each type (types in name order) whose heatmap shows where the model finds that type:
    with a threshold, the lowest-scored one it flagged (the closest call it still caught; none for a type it missed
    every time, which the misses show); without one, the one at the type's median score."""
    out = []
    for label in sorted({r.label for r in rows if r.label != GOOD}):
        of = sorted((i for i, r in enumerate(rows) if r.label == label), key=lambda i: rows[i].score)
        if threshold is None:
            out.append(of[(len(of) - 1) // 2])
        else:
            out += [i for i in of if rows[i].score >= threshold][:1]
    return out


def write_report(
    folder: Path,
    metrics: dict,
    rows: Sequence[Scored],
    threshold: float | None,
    overlays: Callable[[list[Path], list[Path]], None] | None = None,
    limit: int = LIMIT,
) -> Path:
    """Write the report of an evaluation into ``folder``: ``scores.csv`` (every image), ``scores.png`` (the score
    distribution of good images and of each defect type, with the threshold), ``roc.png``, ``misses/`` (heatmaps of
    the worst misses, drawn by ``overlays(images, targets)``), ``examples/`` (the heatmap of a found defect of each
    type, ``examples``) and ``index.html`` tying them together."""
    folder = check_target(folder)
    work = modelfiles.staging_dir(folder, _is_report, "report")
    try:
        _write_csv(work / "scores.csv", rows, threshold)
        _plot_scores(work / "scores.png", rows, threshold)
        have_roc = _plot_roc(work / "roc.png", rows)
        missed, alarms = misses(rows, threshold, None)
        shown: list[tuple[str, int, Path]] = []
        for kind, picked in (("missed", missed), ("false_alarm", alarms)):
            for rank, i in enumerate(picked[:limit], 1):
                r = rows[i]
                shown.append((kind, i, Path("misses") / f"{kind}_{rank:02d}_{r.label}_{r.path.stem}.png"))
        for i in examples(rows, threshold):
            shown.append(("example", i, Path("examples") / f"{rows[i].label}_{rows[i].path.stem}.png"))
        if shown and overlays is not None:
            overlays([rows[i].path for _, i, _ in shown], [work / rel for _, _, rel in shown])
        else:
            shown = []
        totals = {"missed": len(missed), "false_alarm": len(alarms)}
        _write_html(work / "index.html", metrics, rows, threshold, have_roc, shown, totals)
        modelfiles.replace_dir(work, folder, _is_report, "report")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return folder


def check_target(folder: Path) -> Path:
    """``folder`` as a Path when a report may be written there: a new or empty folder or an earlier report, which is
    replaced; a ReportError for anything else there (a file, a folder of other things, the current folder)."""
    try:
        return modelfiles.check_target(folder, _is_report, "report")
    except ModelFileError as e:
        raise ReportError(str(e)) from None


def _is_report(folder: Path) -> bool:
    if not all((folder / name).is_file() for name in REPORT_FILES):
        return False
    if any(p.name not in REPORT_PARTS for p in folder.iterdir()):
        return False
    for sub in (folder / "misses", folder / "examples"):
        if sub.exists() and not (sub.is_dir() and all(p.suffix == ".png" for p in sub.iterdir())):
            return False
    return True


def _write_csv(path: Path, rows: Iterable[Scored], threshold: float | None) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "score", "threshold", "flagged", "correct"])
        for r in rows:
            flagged = None if threshold is None else r.score >= threshold
            correct = None if flagged is None else flagged == (r.label != GOOD)
            w.writerow(
                [
                    str(r.path),
                    r.label,
                    f"{r.score:.6g}",
                    "" if threshold is None else f"{threshold:.6g}",
                    "" if flagged is None else int(flagged),
                    "" if correct is None else int(correct),
                ]
            )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed on a server or a plant PC
    import matplotlib.pyplot as plt

    return plt


def _plot_scores(path: Path, rows: Sequence[Scored], threshold: float | None) -> None:
    """One row of points per label (good first), each image a point at its score, jittered within its row."""
    plt = _pyplot()
    labels = [GOOD] + sorted({r.label for r in rows if r.label != GOOD})
    labels = [k for k in labels if any(r.label == k for r in rows)]
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.5 * len(labels)), dpi=100)
    for y, kind in enumerate(labels):
        s = np.array([r.score for r in rows if r.label == kind])
        colour = "tab:green" if kind == GOOD else "tab:red"
        ax.scatter(s, y + rng.uniform(-0.25, 0.25, len(s)), s=12, alpha=0.7, color=colour, linewidths=0)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.4g}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(labels)), [f"{k} ({sum(r.label == k for r in rows)})" for k in labels])
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.invert_yaxis()
    everything = np.array([r.score for r in rows])
    if everything.size and everything.min() > 0 and everything.max() > 10 * everything.min():
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")  # a few far-off defects would squeeze the rest against the threshold
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel("image score")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_roc(path: Path, rows: Sequence[Scored]) -> bool:
    """The ROC curve of good against defective images; False (nothing drawn) without both."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.array([r.label != GOOD for r in rows])
    if y.all() or not y.any():
        return False
    s = np.array([r.score for r in rows])
    fpr, tpr, _ = roc_curve(y, s)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot(fpr, tpr, color="tab:blue", label=f"AUROC {roc_auc_score(y, s):.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false-alarm rate (good images flagged)")
    ax.set_ylabel("share of defective images found")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "–" if v is None else str(v)


def _write_html(
    path: Path,
    metrics: dict,
    rows: Sequence[Scored],
    threshold: float | None,
    have_roc: bool,
    shown: list[tuple[str, int, Path]],
    totals: dict[str, int],
) -> None:
    """The page; ``shown`` holds the heatmaps drawn ((kind, row, file): the misses and the examples), ``totals`` how
    many misses of each kind there are."""
    e = html.escape
    top = [(k, v) for k, v in metrics.items() if not isinstance(v, dict)]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>linewatch evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
        "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:6px;width:250px}"
        "figure img{width:250px}figcaption{font-size:12px;word-break:break-all}</style></head><body>",
        "<h1>Evaluation</h1><table>",
        *(f"<tr><th>{e(str(k))}</th><td>{e(_fmt(v))}</td></tr>" for k, v in top),
        "</table>",
    ]
    per_type = metrics.get("per_type") or {}
    if per_type:
        cols = sorted({c for row in per_type.values() for c in row})
        parts += ["<h2>Per defect type</h2><table><tr><th>type</th>", *(f"<th>{e(c)}</th>" for c in cols), "</tr>"]
        for kind, row in per_type.items():
            parts += [f"<tr><td>{e(kind)}</td>", *(f"<td>{e(_fmt(row.get(c)))}</td>" for c in cols), "</tr>"]
        parts.append("</table>")
    parts += ["<h2>Scores</h2><img src='scores.png' alt='image scores by label'>"]
    if have_roc:
        parts.append("<img src='roc.png' alt='ROC curve'>")
    parts.append("<p>Every image's score: <a href='scores.csv'>scores.csv</a>.</p>")
    if threshold is None:
        parts.append("<p>The model has no threshold, so nothing is counted as missed or flagged.</p>")
    found = [(i, rel) for k, i, rel in shown if k == "example"]
    if found:
        parts.append(
            "<h2>Where each type of defect is found</h2><p>"
            + (
                "The lowest-scored defect of each type that was flagged: the closest call the model still caught."
                if threshold is not None
                else "The defect of each type at the type's median score."
            )
            + "</p>"
        )
        parts += [_figure(rows[i], rel) for i, rel in found]
    for kind, title in (
        ("missed", "Defects scored good (lowest first)"),
        ("false_alarm", "Good parts flagged (highest first)"),
    ):
        if threshold is None:
            break
        n = sum(k == kind for k, _, _ in shown)
        parts.append(f"<h2>{e(title)}: {totals[kind]}</h2>")
        if totals[kind] > n:
            parts.append(f"<p>The {n} worst are shown; scores.csv lists them all.</p>")
        parts += [_figure(rows[i], rel) for k, i, rel in shown if k == kind]
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")


def _figure(r: Scored, rel: Path) -> str:
    e = html.escape
    return (
        f"<figure><a href='{e(rel.as_posix())}'><img src='{e(rel.as_posix())}' alt=''></a>"
        f"<figcaption>{e(r.label)} · score {r.score:.4g}<br>{e(str(r.path))}</figcaption></figure>"
    )
