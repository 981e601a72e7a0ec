"""`linewatch evaluate --report`: the scores against the threshold, the ROC curve and the worst misses, on disk."""

import csv
import shutil
from pathlib import Path

import pytest

from linewatch.vision.report import ReportError, Scored, examples, misses, write_report


def _rows():
    return [
        Scored(Path("g1.png"), "good", 0.5),
        Scored(Path("g2.png"), "good", 1.4),  # a false alarm
        Scored(Path("g3.png"), "good", 2.0),  # the worst false alarm
        Scored(Path("c1.png"), "crack", 3.0),
        Scored(Path("c2.png"), "crack", 0.9),  # missed
        Scored(Path("s1.png"), "spot", 0.2),  # the worst miss
    ]


def test_misses_are_the_worst_first_and_none_without_a_threshold():
    rows = _rows()
    assert misses(rows, 1.0) == ([5, 4], [2, 1])
    assert misses(rows, 1.0, limit=1) == ([5], [2])
    assert misses(rows, None) == ([], [])


def test_a_report_holds_every_score_the_charts_and_the_misses(tmp_path):
    drawn = []

    def overlays(paths, targets):
        drawn.extend(paths)
        for t in targets:
            t.parent.mkdir(parents=True, exist_ok=True)
            t.write_bytes(b"png")

    out = write_report(
        tmp_path / "r", {"image_auroc": 0.75, "per_type": {"crack": {"images": 2}}}, _rows(), 1.0, overlays
    )
    with (out / "scores.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["image"] for r in table] == [str(r.path) for r in _rows()]
    assert [r["flagged"] for r in table] == ["0", "1", "1", "1", "0", "0"]
    assert [r["correct"] for r in table] == ["1", "0", "0", "1", "0", "0"]
    # the misses, worst first, then the found defect of each type (spot's only one was missed: none)
    assert drawn == [Path("s1.png"), Path("c2.png"), Path("g3.png"), Path("g2.png"), Path("c1.png")]
    page = (out / "index.html").read_text()
    assert "Defects scored good (lowest first): 2" in page and "Good parts flagged (highest first): 2" in page
    assert "Where each type of defect is found" in page
    for name in (
        "scores.png",
        "roc.png",
        "misses/missed_01_spot_s1.png",
        "misses/false_alarm_02_good_g2.png",
        "examples/crack_c1.png",
    ):
        assert (out / name).is_file() and name in page
    assert not list(tmp_path.glob(".r.*"))  # the working folder is gone


def test_the_found_defect_of_each_type_is_the_closest_call_or_the_median_without_a_threshold():
    rows = [*_rows(), Scored(Path("c3.png"), "crack", 1.2), Scored(Path("s2.png"), "spot", 5.0)]
    assert examples(rows, 1.0) == [6, 7]  # crack: c3 (1.2) is caught closer to the threshold than c1 (3.0)
    assert examples(rows, 10.0) == []  # nothing caught
    assert examples(rows, None) == [6, 5]  # the medians: crack 0.9 / 1.2 / 3.0, spot 0.2 / 5.0 (the lower middle)
    assert examples(_rows()[:3], 1.0) == []  # no defects


def test_a_folder_of_other_things_is_never_replaced_and_an_old_report_is(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.png").write_bytes(b"x")
    with pytest.raises(ReportError, match="not a linewatch report"):
        write_report(other, {}, _rows(), 1.0)
    assert [p.name for p in other.iterdir()] == ["keep.png"]
    first = write_report(tmp_path / "r", {}, _rows(), 1.0, lambda paths, targets: None)
    (first / "notes.txt").write_text("a user's notes on the first report")
    with pytest.raises(ReportError, match="not a linewatch report"):
        write_report(first, {}, _rows()[:3], None)  # a report with a user's file in it is the user's now
    assert (first / "notes.txt").is_file() and (first / "roc.png").is_file()
    (first / "notes.txt").unlink()
    again = write_report(first, {}, _rows()[:3], None)
    assert not (again / "roc.png").exists()  # only good images: no ROC
    assert "no threshold" in (again / "index.html").read_text()
    assert len((again / "scores.csv").read_text().splitlines()) == 4


def test_evaluate_writes_a_report_with_the_heatmaps_of_its_misses(synthetic, trained, tmp_path, cli_here):
    """Defective images filed as good are what the report must show as false alarms, with their heatmaps."""
    _, model = trained
    data = tmp_path / "data"
    shutil.copytree(synthetic, data)
    defect = next(d for d in (data / "test").iterdir() if d.name != "good")
    moved = sorted(defect.iterdir())[:2]
    for p in moved:
        p.rename(data / "test" / "good" / f"filed_as_good_{p.name}")
    report = tmp_path / "report"
    r = cli_here("evaluate", model, data, "--report", report, "--no-store")
    assert r.exit_code == 0, r.stderr[-2000:]
    assert str(report / "index.html") in " ".join(r.stderr.split())
    with (report / "scores.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len([p for p in (data / "test").rglob("*") if p.is_file()])
    alarms = sorted((report / "misses").glob("false_alarm_*.png"))
    assert {p.name.split("_good_", 1)[1] for p in alarms} >= {f"filed_as_good_{p.stem}.png" for p in moved}
    assert all(p.stat().st_size > 1000 for p in alarms)  # real overlays, not empty files
    # a folder that is not a report: refused before any scoring, exit 2, nothing touched
    r = cli_here("evaluate", model, data, "--report", data)
    assert r.exit_code == 2 and "not a linewatch report" in r.stderr
