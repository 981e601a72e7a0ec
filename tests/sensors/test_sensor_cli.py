"""`linewatch sensors ...` end to end on small generated files; bad input exits 2 with one line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from linewatch.cli import app

runner = CliRunner()


def write(path, x, times=None, labels=None):
    head = ["time", "a", "b", "c"] + (["label"] if labels is not None else [])
    times = np.arange(len(x)) if times is None else times
    lines = [",".join(head)]
    for i, row in enumerate(x):
        cells = [str(times[i]), *(f"{v:.5f}" for v in row)] + ([str(int(labels[i]))] if labels is not None else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, normal, faulty):
    d = tmp_path_factory.mktemp("cli")
    x, y = faulty
    return d, write(d / "train.csv", normal), write(d / "test.csv", x, np.arange(1200, 1800), y)


@pytest.fixture(scope="module")
def model(files):
    d, train, _ = files
    r = runner.invoke(app, ["sensors", "fit", str(train), "--out", str(d / "m"), "--time-column", "time"])
    assert r.exit_code == 0, r.output
    return d / "m"


def test_score_prints_a_record_per_row_with_sensors(files, model):
    _, _, test = files
    r = runner.invoke(app, ["sensors", "score", str(model), str(test), "--json"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(recs) == 600
    assert set(recs[0]) == {"time", "score", "is_anomaly", "sensors"}
    burst = [x for x in recs[200:220] if x["is_anomaly"]]
    assert len(burst) > 10 and all(x["sensors"][0]["sensor"] == "b" for x in burst)
    assert recs[0]["time"] == 1200


def test_evaluate_reports_the_alarm_metrics(files, model):
    _, _, test = files
    r = runner.invoke(app, ["sensors", "evaluate", str(model), str(test), "--labels", "label", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"precision", "recall", "f1", "far", "mar"} <= set(m)
    assert m["recall"] > 0.5 and m["far"] < 0.1


def test_fit_with_a_method_and_parameters(files):
    d, train, _ = files
    r = runner.invoke(
        app,
        [
            "sensors",
            "fit",
            str(train),
            "--out",
            str(d / "m2"),
            "--method",
            "ecod",
            "--windows",
            "5",
            "--lags",
            "",
            "--drift-ratio",
            "0",
            "--columns",
            "a,b",
        ],
    )
    assert r.exit_code == 0, r.output
    manifest = json.loads((d / "m2" / "manifest.json").read_text())
    assert manifest["method"] == "ecod" and manifest["sensors"] == ["a", "b"]
    assert manifest["params"]["windows"] == [5] and manifest["params"]["lags"] == []
    assert manifest["params"]["drift_ratio"] == 0.0


BAD = {
    "unreadable file": ("nope.csv", None, "not found"),
    "not a table": ("binary.csv", b"\x00\x01\x02\xff\xfe", "cannot read|no numeric"),
    "no numeric columns": ("text.csv", "time,name\n1,alpha\n2,beta\n", "no numeric"),
    "all missing": ("empty.csv", "time,a,b\n1,,2\n2,,3\n3,,4\n", "all missing"),
    "unsorted": ("unsorted.csv", "time,a,b\n3,1,2\n1,1,2\n2,1,2\n", "not sorted"),
    "duplicate": ("dup.csv", "time,a,b\n1,1,2\n2,1,2\n2,1,2\n", "duplicate"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path):
    name, content, message = BAD[case]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    r = runner.invoke(app, ["sensors", "fit", str(path), "--out", str(tmp_path / "m"), "--time-column", "time"])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    import re

    assert re.search(message, r.stderr), r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--columns", "a,zz"], "no column 'zz'"),
        (["--method", "nosuch"], "choose one of"),
        (["--windows", "0"], "positive"),
        (["--windows", "ten"], "--windows"),
        (["--n-estimators", "50"], "does not apply to the mahalanobis method"),
        (["--nosuch", "1"], "No such option"),
        (["--time-column", "when"], "no time column"),
        (["--method", "pca", "--n-components", "1000"], "n_components 1000 must be a fraction below 1"),
        (["--method", "pca", "--n-components", "2.5"], "or a whole number of components"),
        (["--method", "autoencoder", "--hidden", "0"], "hidden 0 is outside [1, 4096]"),
        (["--method", "autoencoder", "--hidden", "8,-4"], "hidden -4 is outside"),
        (["--threshold-margin", "nan"], "threshold_margin must be a finite number"),
    ],
)
def test_bad_options_exit_2(files, args, message, tmp_path):
    _, train, _ = files
    r = runner.invoke(app, ["sensors", "fit", str(train), "--out", str(tmp_path / "m"), *args])
    assert r.exit_code == 2, r.output
    assert message in r.stderr


def test_scoring_data_without_the_model_sensors_exits_2(files, model, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("time,a,b\n1,1,2\n2,1,2\n")
    r = runner.invoke(app, ["sensors", "score", str(model), str(other)])
    assert r.exit_code == 2 and "no column 'c'" in r.stderr
    r = runner.invoke(app, ["sensors", "score", str(tmp_path / "nomodel"), str(other)])
    assert r.exit_code == 2 and "model not found" in r.stderr


def test_methods_lists_every_registered_method():
    r = runner.invoke(app, ["sensors", "methods"])
    assert r.exit_code == 0
    for name in ("mahalanobis", "iforest", "ecod", "copod", "hbos", "knn", "lof", "pca", "autoencoder", "ensemble"):
        assert name in r.stdout


def test_a_sensor_column_with_text_cells_reads_them_as_missing(normal, tmp_path):
    # plant exports write "ERR" or "n/a" where a sensor dropped out: the column is text to pandas
    path = write(tmp_path / "gaps.csv", normal[:300])
    lines = path.read_text().splitlines()
    for i in (5, 40, 41, 200):
        cells = lines[i].split(",")
        cells[2] = "ERR" if i % 2 else "n/a"
        lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    from linewatch.sensors.tables import load_series

    (series,) = load_series(path, time_column="time")
    assert series.sensors == ["a", "b", "c"]  # b is still a sensor, not dropped for its text cells
    assert np.isnan(series.values[[4, 39, 40, 199], 1]).all() and np.isfinite(series.values[:, [0, 2]]).all()
    assert np.isfinite(series.values[:, 1]).sum() == 296
    r = runner.invoke(app, ["sensors", "fit", str(path), "--out", str(tmp_path / "m"), "--time-column", "time"])
    assert r.exit_code == 0, r.output


def test_a_single_integer_sensor_column_loads(tmp_path):
    from linewatch.sensors.tables import load_series

    path = tmp_path / "counts.csv"
    path.write_text("t,count,operator\n1,3,ann\n2,4,bob\n3,5,ann\n")
    (series,) = load_series(path, time_column="t")
    assert series.sensors == ["count"] and series.values.tolist() == [[3.0], [4.0], [5.0]]


def test_a_folder_of_data_is_never_replaced_by_a_model(files, tmp_path):
    d, train, _ = files
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    r = runner.invoke(app, ["sensors", "fit", str(train), "--out", str(d), "--time-column", "time"])
    assert r.exit_code == 2 and "is not a linewatch model: nothing was written" in r.output, r.output
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before


def test_times_across_a_change_of_summer_time_are_the_instants_they_name(tmp_path):
    import pandas as pd

    from linewatch.sensors.tables import parse_times

    col = pd.Series(["2026-03-29T01:59:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:01:00+02:00"])
    assert parse_times(col, tmp_path / "x.csv", "time").tolist() == [0.0, 60.0, 120.0]


@pytest.mark.parametrize("method", ["knn", "lof"])
def test_more_neighbours_than_training_rows_is_refused(method, normal, tmp_path):
    short = write(tmp_path / "short.csv", normal[:80])
    args = ["sensors", "fit", str(short), "--out", str(tmp_path / "m"), "--method", method, "--n-neighbors", "100"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "n_neighbors 100 needs more than 100 training rows" in r.stderr, r.output


def _tampered(model, tmp_path, name, change):
    import shutil

    copy = tmp_path / name
    shutil.copytree(model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    "name, change",
    [
        ("files_text", lambda m: m.__setitem__("files", "x")),
        ("entry_without_name", lambda m: m["files"]["train_features"].pop("name")),
        ("entry_outside", lambda m: m["files"]["train_features"].__setitem__("name", "../m/train_features.npy")),
        ("threshold_null", lambda m: m.__setitem__("threshold", None)),
        ("params_list", lambda m: m.__setitem__("params", [])),
        ("sensors_number", lambda m: m.__setitem__("sensors", 3)),
        ("centre_cut", lambda m: m["pipeline"].__setitem__("center", m["pipeline"]["center"][:1])),
        ("feature_mean_cut", lambda m: m["pipeline"].__setitem__("feature_mean", m["pipeline"]["feature_mean"][:1])),
        ("step_text", lambda m: m["pipeline"].__setitem__("step", "x")),
        ("window_negative", lambda m: m["pipeline"].__setitem__("windows", [-1])),
    ],
)
def test_a_tampered_model_is_refused_when_loaded(files, model, tmp_path, name, change):
    _, _, test = files
    r = runner.invoke(app, ["sensors", "score", str(_tampered(model, tmp_path, name, change)), str(test)])
    assert r.exit_code == 2 and "internal error" not in r.output, r.output
    assert len(r.stderr.strip().splitlines()) == 1 and name in r.stderr


def test_a_sensor_named_twice_is_refused(files, tmp_path):
    _, train, _ = files
    r = runner.invoke(app, ["sensors", "fit", str(train), "--out", str(tmp_path / "m"), "--columns", "a,b,a"])
    assert r.exit_code == 2 and "--columns names 'a' twice" in r.stderr, r.output


def test_sensor_names_with_units_in_brackets_are_printed_whole(normal, faulty, tmp_path):
    """Plant exports name columns with their unit in brackets (AI4I: 'Rotational speed [rpm]'); Rich read a
    lowercase one as markup and printed 'Rotational speed ' in alerts and the constant-column note."""
    names = ["Rotational speed [rpm]", "Tool wear [min]", "Torque [Nm]"]
    x, _ = faulty

    def table(path, rows, start):
        lines = [",".join(["time", *names, "Flag [on]"])]
        lines += [",".join([str(start + i), *(f"{v:.5f}" for v in row), "1"]) for i, row in enumerate(rows)]
        path.write_text("\n".join(lines) + "\n")
        return path

    train, test = table(tmp_path / "train.csv", normal, 0), table(tmp_path / "test.csv", x, 1200)
    r = runner.invoke(app, ["sensors", "fit", str(train), "--out", str(tmp_path / "m"), "--time-column", "time"])
    assert r.exit_code == 0, r.output
    assert "left out: Flag [on]" in r.output, r.output
    r = runner.invoke(app, ["sensors", "score", str(tmp_path / "m"), str(test), "--time-column", "time"])
    assert r.exit_code == 0, r.output
    alerts = [line for line in r.stdout.splitlines() if "score" in line]
    assert alerts and all("[" in line for line in alerts), r.stdout
    assert any("Tool wear [min]" in line or "Rotational speed [rpm]" in line for line in alerts), r.stdout


def test_calibrate_sets_the_threshold_on_recent_normal_rows(files, model, make_machine, tmp_path):
    """A sensor replaced by a noisier one: the old threshold flags normal rows all day; calibrating on a day of
    them brings the false alarms back to the rate asked, keeps what the model learned and the threshold it
    replaced."""
    rng = np.random.default_rng(7)
    recent = make_machine(1200, seed=2, start=1800)
    recent[:, 2] += rng.normal(0, 2.5, 1200)  # c's new transmitter is noisier
    data = write(tmp_path / "recent.csv", recent, np.arange(1800, 3000))
    later = make_machine(600, seed=3, start=3000)
    later[:, 2] += rng.normal(0, 2.5, 600)
    later_file = write(tmp_path / "later.csv", later, np.arange(3000, 3600))
    before = json.loads((model / "manifest.json").read_text())

    r = runner.invoke(app, ["sensors", "calibrate", str(model), str(data), "-o", str(tmp_path / "m2"), "--json"])
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout.strip().splitlines()[-1])
    assert done["threshold_before"] == before["threshold"] < done["threshold_after"]
    assert done["rows"] == 1200 and done["false_alarm_rate"] == 0.01 and done["model"] == str(tmp_path / "m2")
    assert done["flagged_before"] > 100 and done["flagged_after"] <= 12
    assert json.loads((model / "manifest.json").read_text()) == before  # -o: the model itself is left as it is
    m2 = json.loads((tmp_path / "m2" / "manifest.json").read_text())
    assert m2["threshold"] == done["threshold_after"] and m2["calibration"]["rows"] == 1200
    assert m2["calibration_history"][-1]["threshold"] == before["threshold"]

    def flagged(m) -> int:
        r = runner.invoke(app, ["sensors", "score", str(m), str(later_file), "--json"])
        assert r.exit_code == 0, r.output
        return sum(json.loads(x)["is_anomaly"] for x in r.stdout.splitlines() if x.startswith("{"))

    assert flagged(model) > 60 and flagged(tmp_path / "m2") <= 18  # later days of the same normal: few alarms

    # in place, at another rate: a lower threshold, the history grows
    r = runner.invoke(app, ["sensors", "calibrate", str(tmp_path / "m2"), str(data), "--false-alarm-rate", "0.05"])
    assert r.exit_code == 0, r.output
    assert "at 5.0% false alarms" in r.output and "set on 1200 rows" in r.output
    m3 = json.loads((tmp_path / "m2" / "manifest.json").read_text())
    assert m3["threshold"] < m2["threshold"] and m3["params"]["false_alarm_rate"] == 0.05
    assert [h["threshold"] for h in m3["calibration_history"]] == [before["threshold"], m2["threshold"]]


def test_calibrate_undo_goes_back_one_threshold_at_a_time(model, make_machine, tmp_path):
    """--undo restores the threshold, rate and calibration record the last calibration replaced; twice, the
    threshold set at fit; a third time says there is nothing to go back to. The model still loads and scores."""

    import shutil

    def manifest(m):
        return json.loads((m / "manifest.json").read_text())

    model = shutil.copytree(model, tmp_path / "model")  # the module's model stays as fitted
    fitted = manifest(model)
    r = runner.invoke(app, ["sensors", "calibrate", str(model), "--undo"])
    assert r.exit_code == 2 and "keeps no earlier calibration" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["sensors", "calibrate", str(model)])
    assert r.exit_code == 2 and "give a file or folder of normal operation" in r.output, r.output
    data = write(tmp_path / "recent.csv", make_machine(600, seed=2, start=1800), np.arange(1800, 2400))
    assert runner.invoke(app, ["sensors", "calibrate", str(model), str(data)]).exit_code == 0
    on_rows = manifest(model)
    r = runner.invoke(app, ["sensors", "calibrate", str(model), str(data), "--false-alarm-rate", "0.05"])
    assert r.exit_code == 0, r.output
    at_rate = manifest(model)
    for extra in ([str(data)], ["--false-alarm-rate", "0.1"]):
        r = runner.invoke(app, ["sensors", "calibrate", str(model), *extra, "--undo"])
        assert r.exit_code == 2 and "give it no data" in r.output, r.output

    copy = tmp_path / "copy"
    r = runner.invoke(app, ["sensors", "calibrate", str(model), "--undo", "-o", str(copy), "--json"])
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout.strip().splitlines()[-1])
    assert done["source"] == "history" and done["model"] == str(copy)
    assert (done["threshold_before"], done["threshold_after"]) == (at_rate["threshold"], on_rows["threshold"])
    assert manifest(copy) == on_rows and manifest(model) == at_rate  # -o: the model itself as it was

    r = runner.invoke(app, ["sensors", "calibrate", str(model), "--undo"])
    assert r.exit_code == 0 and "back to the threshold" in r.output, r.output
    assert manifest(model) == on_rows
    assert runner.invoke(app, ["sensors", "calibrate", str(model), "--undo"]).exit_code == 0
    assert manifest(model) == {**fitted, "calibration_history": []}
    r = runner.invoke(app, ["sensors", "score", str(model), str(data), "--json"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--false-alarm-rate", "0.7"], "above 0 and below 0.5"),
        (["-o", "{model}/inside"], "cannot go inside"),
        ([], "at least 50 rows"),
    ],
)
def test_calibrate_refuses_what_cannot_hold_a_threshold(files, model, make_machine, tmp_path, args, message):
    few = write(tmp_path / "few.csv", make_machine(30, seed=4), np.arange(30))
    data = few if not args else files[1]
    args = [a.replace("{model}", str(model)) for a in args]
    r = runner.invoke(app, ["sensors", "calibrate", str(model), str(data), *args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert "Traceback" not in r.output


def test_a_column_named_like_a_time_is_the_time_column_unless_told_otherwise(files, tmp_path):
    """Without --time-column, a column named time (or timestamp, …) gives the times rather than being read as a
    sensor; the model keeps it for scoring. Named as a sensor in --columns, it stays one."""
    _, train, test = files
    r = runner.invoke(app, ["sensors", "fit", str(train), "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert "time column: time" in r.stderr
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["sensors"] == ["a", "b", "c"] and manifest["info"]["time_column"] == "time"
    r = runner.invoke(app, ["sensors", "score", str(tmp_path / "m"), str(test), "--json"])
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.exit_code == 0 and recs[0]["time"] == 1200
    r = runner.invoke(app, ["sensors", "fit", str(train), "--out", str(tmp_path / "t"), "--columns", "time,a"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["sensors"] == ["time", "a"] and manifest["info"]["time_column"] is None
