"""``linewatch maintenance`` end to end on generated files, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from linewatch.maintenance.synthetic import machine_readings, run_to_failure

LW = [sys.executable, "-m", "linewatch.cli", "maintenance"]
TINY = ["--window", "8", "--epochs", "3", "--folds", "2", "--channels", "4", "--tree-iter", "20", "-q"]


def run(*args, check=True):
    r = subprocess.run([*LW, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
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
        (["predict", "{t}", "{d}/test.parquet"], "manifest"),
        (["predict", "{d}/nomodel", "{d}/test.parquet"], "not found"),
        (["evaluate", "{d}/nomodel", "{d}/test.parquet"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, tmp_path, args, says):
    r = run(*[a.format(d=files, t=tmp_path) for a in args], check=False)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert says in r.stderr
