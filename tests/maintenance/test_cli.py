"""``linewatch maintenance`` end to end on generated files, and its one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from linewatch.cli import app
from linewatch.maintenance.synthetic import machine_readings, run_to_failure

TINY = ["--window", "8", "--epochs", "3", "--folds", "2", "--channels", "4", "--tree-iter", "20", "-q"]
RUNNER = CliRunner()


def run(*args, check=True):
    """A ``linewatch maintenance`` command in this process (no interpreter start and torch import per command; an
    exception that escaped the command's own handling would be exit 1, never the users' exit 2)."""
    r = RUNNER.invoke(app, ["maintenance", *map(str, args)])
    if check:
        assert r.exit_code == 0, r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("maint")
    train, _ = run_to_failure(6, seed=0, min_life=30, max_life=50, n_sensors=3)
    test, truth = run_to_failure(4, seed=1, min_life=30, max_life=50, n_sensors=3, cut=True)
    # C-MAPSS's own text layout: no header, space separated, 26 columns, trailing spaces
    cm = np.zeros((len(train), 26))
    cm[:, 0], cm[:, 1] = train["unit"], train["cycle"]
    cm[:, 5:8] = train[["sensor_1", "sensor_2", "sensor_3"]]
    cm[:, 8:] = 7.0  # constant sensors, as C-MAPSS has
    np.savetxt(d / "train_FD.txt", cm, fmt="%.4f", delimiter=" ", newline="  \n")
    train.to_csv(d / "train.csv", index=False)
    test.to_parquet(d / "test.parquet")
    (d / "RUL.txt").write_text("".join(f"{t:g}\n" for t in truth))
    machine_readings(1500, seed=0).to_csv(d / "readings.csv", index=False)
    readings = machine_readings(1500, seed=0)
    failing = readings.copy()
    failing["Machine failure"] = 1
    failing.to_csv(d / "all_failures.csv", index=False)
    typo = readings.astype({"Torque [Nm]": object})
    typo.loc[7, "Torque [Nm]"] = "12,5 Nm"
    typo.to_csv(d / "typo.csv", index=False)
    return d


def test_fit_predict_evaluate_rul(files, tmp_path):
    model = tmp_path / "model"
    run("fit", files / "train.csv", "--out", model, "--target", "rul", *TINY)
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["engine"] == "maintenance" and manifest["method"] == "cnn" and manifest["format_version"] == 1
    recs = [json.loads(x) for x in run("predict", model, files / "test.parquet", "--json").stdout.splitlines()]
    assert [r["unit"] for r in recs] == [1, 2, 3, 4]
    assert all(r["rul_low"] <= r["rul"] <= r["rul_high"] for r in recs)
    every = run("predict", model, files / "test.parquet", "--json", "--all-cycles").stdout.splitlines()
    assert len(every) > len(recs)
    m = json.loads(run("evaluate", model, files / "test.parquet", "--truth", files / "RUL.txt", "--json").stdout)
    assert m["units"] == 4 and {"rmse", "nasa_score", "coverage", "mean_interval_width"} <= set(m)


def test_cmapss_text_is_read_as_it_ships(files, tmp_path):
    model = tmp_path / "model"
    run("fit", files / "train_FD.txt", "--out", model, *TINY)
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["learned"]["sensor_names"][:2] == ["sensor_1", "sensor_2"]
    assert manifest["train_info"]["sensors_used"] == 3  # the 18 constant sensors are dropped


def test_fit_predict_evaluate_failure(files, tmp_path):
    model = tmp_path / "risk"
    run("fit", files / "readings.csv", "--out", model, "--target", "failure", "--max-iter", "20", "--folds", "2")
    recs = [json.loads(x) for x in run("predict", model, files / "readings.csv", "--json").stdout.splitlines()]
    assert len(recs) == 1500 and set(recs[0]["modes"]) == {"HDF", "PWF", "RNF"}
    assert all(0 <= r["failure_probability"] <= 1 for r in recs)
    m = json.loads(run("evaluate", model, files / "readings.csv", "--json").stdout)
    assert m["failure"]["roc_auc"] > 0.9 and "PWF" in m


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["fit", "{d}/nope.csv", "--out", "{t}/m"], "not found"),
        (["fit", "{d}/RUL.txt", "--out", "{t}/m"], "26"),  # one column is not C-MAPSS text
        (["fit", "{d}/readings.csv", "--out", "{t}/m", "--target", "rul", "--window", "2"], "window"),
        (["fit", "{d}/train.csv", "--out", "{t}/m", "--target", "failure"], "label"),
        (["fit", "{d}/train.csv", "--out", "{t}/m", "--method", "boosted"], "does not predict"),
        (["fit", "{d}/readings.csv", "--out", "{d}", "--target", "failure"], "is not a linewatch model"),  # its data
        (["fit", "{d}/all_failures.csv", "--out", "{t}/m", "--target", "failure"], "without a failure"),
        (["fit", "{d}/typo.csv", "--out", "{t}/m", "--target", "failure"], "'12,5 Nm' (row 9): correct or empty"),
        (["predict", "{t}", "{d}/test.parquet"], "manifest"),
        (["predict", "{d}/nomodel", "{d}/test.parquet"], "not found"),
        (["evaluate", "{d}/nomodel", "{d}/test.parquet"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, tmp_path, args, says):
    r = run(*[a.format(d=files, t=tmp_path) for a in args], check=False)
    assert r.exit_code == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert says in r.stderr
    assert {"readings.csv", "train.csv", "RUL.txt"} <= {p.name for p in files.iterdir()}  # a user's files stay


def test_empty_readings_are_filled_within_their_unit_and_named(files, tmp_path):
    """Sensor exports have gaps (a dropped reading, an ERR cell): RUL histories fill each from the same unit's last
    reading before it (or its first after it at the start of a life); fit and predict say how many."""
    import pandas as pd

    train = pd.read_csv(files / "train.csv")
    rng = np.random.default_rng(0)
    gaps = train.copy()
    gaps.loc[rng.choice(len(gaps), 15, replace=False), "sensor_2"] = np.nan
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    model = tmp_path / "model"
    fitted = run("fit", tmp_path / "gaps.csv", "--out", model, *TINY)
    assert "15 empty reading(s) filled" in " ".join(fitted.stderr.split())
    test = pd.read_parquet(files / "test.parquet")
    test.loc[[0, 1, len(test) - 1], "sensor_1"] = np.nan
    test.to_csv(tmp_path / "test.csv", index=False)
    scored = run("predict", model, tmp_path / "test.csv", "--json")
    assert "3 empty reading(s) filled" in " ".join(scored.stderr.split())
    recs = [json.loads(x) for x in scored.stdout.splitlines()]
    assert len(recs) == 4 and all(np.isfinite([r["rul"], r["rul_low"], r["rul_high"]]).all() for r in recs)
    test["sensor_3"] = np.nan
    test.to_csv(tmp_path / "empty.csv", index=False)
    r = run("predict", model, tmp_path / "empty.csv", check=False)
    assert r.exit_code == 2 and "'sensor_3' has no readings" in r.stderr


def test_fill_gaps_takes_each_unit_s_own_readings():
    from linewatch.maintenance.tables import fill_gaps

    units = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    values = np.array(
        [
            [np.nan, 1.0],
            [2.0, np.nan],
            [np.nan, 3.0],
            [4.0, np.nan],
            [np.nan, 5.0],
            [6.0, 6.0],
            [np.nan, 7.0],
            [np.nan, 8.0],
        ]
    )
    out, n = fill_gaps(values, units)
    assert n == 7
    # unit 1: the first from the next reading, the rest from the last before; unit 2 the same; never across units
    np.testing.assert_array_equal(out[:, 1], [1, 1, 3, 3, 5, 6, 7, 8])
    # unit 3 has no reading of the first column: the column's median over the other units (2, 4, 6)
    np.testing.assert_array_equal(out[:, 0], [2, 2, 2, 4, 6, 6, 4, 4])
    same, none = fill_gaps(np.ones((3, 2)), np.array([1, 1, 2]))
    assert none == 0 and (same == 1).all()


def test_failure_readings_with_gaps_and_rows_without_a_label(files, tmp_path):
    import pandas as pd

    df = pd.read_csv(files / "readings.csv")
    sensor = next(c for c in df.columns if pd.api.types.is_float_dtype(df[c]))
    df.loc[[3, 50, 700], sensor] = np.nan
    label = "Machine failure" if "Machine failure" in df.columns else "failure"
    df[label] = df[label].astype(float)
    df.loc[[10, 11], label] = np.nan
    df.to_csv(tmp_path / "gaps.csv", index=False)
    model = tmp_path / "risk"
    fitted = run(
        "fit", tmp_path / "gaps.csv", "--out", model, "--target", "failure", "--max-iter", "20", "--folds", "2"
    )
    said = " ".join(fitted.stderr.split())
    assert "3 empty reading(s) taken as missing values" in said and "2 row(s) without a failure label" in said
    assert json.loads((model / "manifest.json").read_text())["train_info"]["rows"] == len(df) - 2
    recs = [json.loads(x) for x in run("predict", model, tmp_path / "gaps.csv", "--json").stdout.splitlines()]
    assert len(recs) == len(df) and all(0 <= r["failure_probability"] <= 1 for r in recs)
    m = run("evaluate", model, tmp_path / "gaps.csv", "--json")
    assert "2 row(s) without a failure label left out of the figures" in " ".join(m.stderr.split())
    assert json.loads(m.stdout)["failure"]["rows"] == len(df) - 2


def test_true_ruls_are_numbers_of_cycles_and_units_whole_numbers(tmp_path):
    import numpy as np

    from linewatch.maintenance.tables import DataError, read_truth

    units = np.array([1, 2, 3])
    for name, text, says in [
        ("nan.txt", "nan\n5\n7\n", "RUL value 1 is nan, not a number of cycles >= 0"),
        ("inf.txt", "3\n1e400\n7\n", "RUL value 2 is inf"),
        ("neg.txt", "3\n5\n-7\n", "RUL value 3 is -7"),
        ("word.csv", "unit,rul\n1,3\ntwo,5\n3,7\n", "row 3: unit two is not a whole number"),
        ("frac.csv", "unit,rul\n1,3\n1.5,5\n3,7\n", "row 3: unit 1.5 is not a whole number"),
        ("empty.csv", "unit,rul\n1,3\n,5\n3,7\n", "row 3: unit [(]empty[)] is not a whole number"),
        ("twice.csv", "unit,rul\n1,3\n1,5\n3,7\n", "unit 1 has more than one RUL"),
        ("text.csv", "unit,rul\n1,3\n2,soon\n3,7\n", "RUL value 2 is nan"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=says):
            read_truth(tmp_path / name, units)
    (tmp_path / "ok.csv").write_text("unit,rul\n3,7\n1,3\n2,5\n")
    assert read_truth(tmp_path / "ok.csv", units).tolist() == [3.0, 5.0, 7.0]


def test_a_tampered_model_is_refused_when_loaded(files, tmp_path, cli_here):
    model = tmp_path / "model"
    # a small model: the tampering is the subject, not the fit
    run("fit", files / "readings.csv", "--out", model, "--target", "failure", "--max-iter", "20", "--folds", "2", "-q")
    manifest = json.loads((model / "manifest.json").read_text())
    for name, change in {
        "categories_list": lambda m: m["learned"].__setitem__("categories", []),
        "config_list": lambda m: m.__setitem__("config", []),
        "members_text": lambda m: m["learned"].__setitem__("members", "x"),
        "scaling_short": lambda m: m["learned"]["scaling"].__setitem__("any", [1]),
        "numeric_number": lambda m: m["learned"].__setitem__("numeric", 3),
    }.items():
        copy = tmp_path / name
        shutil.copytree(model, copy)
        doc = json.loads(json.dumps(manifest))
        change(doc)
        (copy / "manifest.json").write_text(json.dumps(doc))
        r = cli_here("maintenance", "predict", copy, files / "readings.csv")
        assert r.exit_code == 2 and "is incomplete or inconsistent" in r.stderr, (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
