"""RUL: regimes, windows, intervals and the whole estimator on small generated run-to-failure fleets."""

from __future__ import annotations

import numpy as np
import pytest

from linewatch.maintenance.intervals import apply_intervals, fit_intervals
from linewatch.maintenance.metrics import nasa_score, rul_metrics
from linewatch.maintenance.regimes import fit_regimes, normalise
from linewatch.maintenance.rul import RulCNN, history_slopes, threads, windows
from linewatch.maintenance.synthetic import run_to_failure
from linewatch.maintenance.tables import histories

SMALL = {"window": 10, "epochs": 15, "folds": 2, "channels": 8, "max_regimes": 6, "batch_size": 64, "tree_iter": 60}


def test_regimes_are_found_when_settings_cluster_and_not_in_noise():
    multi, _ = run_to_failure(10, regimes=4, seed=3)
    h = histories(multi)
    state = fit_regimes(h.settings, h.sensors, max_regimes=8, seed=0)
    assert len(state["centers"]) == 4
    z = normalise(h.settings, h.sensors, state)
    # within each regime the sensors are centred, so the regime's level no longer dominates the spread
    assert z.std(axis=0).max() < 2.0 and h.sensors.std(axis=0).max() > 3.0
    single, _ = run_to_failure(10, regimes=1, seed=3)
    h1 = histories(single)
    assert len(fit_regimes(h1.settings, h1.sensors, max_regimes=8, seed=0)["centers"]) == 1


def test_constant_sensors_are_dropped():
    df, _ = run_to_failure(6, seed=0)
    df["sensor_flat"] = 518.67
    h = histories(df)
    state = fit_regimes(h.settings, h.sensors, 4, 0)
    assert state["keep"].tolist() == [1] * (h.sensors.shape[1] - 1) + [0]


def test_windows_pad_short_histories_with_the_first_reading():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)  # unit A: 2 rows, unit B: 4 rows
    w = windows(x, np.array([0, 2, 6]), 3)
    assert w.shape == (6, 3, 2)
    np.testing.assert_array_equal(w[0], [[0, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(w[1], [[0, 1], [0, 1], [2, 3]])
    np.testing.assert_array_equal(w[5], [[6, 7], [8, 9], [10, 11]])  # never reaches into unit A


def test_history_slopes_are_least_squares_over_each_units_past_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 2))  # unit A: rows 0-3, unit B: rows 4-8
    got = history_slopes(x, np.array([0, 4, 9]))
    assert np.all(got[[0, 4]] == 0)  # one cycle: no slope yet
    for row, start in [(1, 0), (3, 0), (6, 4), (8, 4)]:
        past = x[start : row + 1]
        want = np.polyfit(np.arange(len(past)), past, 1)[0]
        np.testing.assert_allclose(got[row], want, atol=1e-9)


def test_threads_are_limited_inside_and_restored_after():
    import torch

    before = torch.get_num_threads()
    with threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_conformal_intervals_cover_at_the_nominal_rate_on_exchangeable_data():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 125, 6000)
    truth = pred + rng.normal(0, 2 + pred / 10)  # errors grow with the prediction
    state = fit_intervals(pred[:3000], truth[:3000], coverage=0.9)
    low, high = apply_intervals(pred[3000:], state)
    cov = np.mean((low <= truth[3000:]) & (truth[3000:] <= high))
    assert 0.87 <= cov <= 0.93
    near, far = apply_intervals(np.array([5.0, 120.0]), state)[1] - apply_intervals(np.array([5.0, 120.0]), state)[0]
    assert near < far / 2  # narrower where the prediction says failure is near


def test_an_interval_always_holds_its_prediction_even_when_a_bins_residuals_are_all_positive():
    pred = np.linspace(0, 125, 400)
    truth = np.where(pred > 100, pred + 40, pred)  # past the cap the truth runs on: every residual there is > 0
    state = fit_intervals(pred, truth + np.random.default_rng(0).normal(0, 1, 400), coverage=0.9)
    assert state["low"][-1] > 0  # the top bin's lower quantile lies above its predictions
    low, high = apply_intervals(pred, state)
    assert np.all(low <= pred) and np.all(pred <= high)


def test_every_unit_weighs_one_cut_point_whatever_its_row_count():
    rng = np.random.default_rng(0)
    units = np.repeat(np.arange(21), [50] * 20 + [2000])  # twenty short lives and one very long one
    truth = rng.uniform(0, 40, len(units))
    pred = truth + np.where(units == 20, rng.normal(0, 30, len(units)), rng.normal(0, 1, len(units)))
    by_row = fit_intervals(pred, truth, 0.9)
    by_unit = fit_intervals(pred, truth, 0.9, units=units)
    width = lambda st: float(np.mean(np.subtract(*apply_intervals(pred, st)[::-1])))  # noqa: E731
    assert width(by_unit) < width(by_row) / 3  # the long life's 2,000 rows no longer set the width
    short = units < 20
    low, high = apply_intervals(pred[short], by_unit)
    assert np.mean((low <= truth[short]) & (truth[short] <= high)) > 0.8


def test_cut_points_further_from_failure_than_the_horizon_do_not_calibrate():
    """Capped predictions: a healthy-looking unit's truth runs on past the cap. Calibrated on every row of long
    lives, the top bin's upper end reaches far beyond a unit cut within the horizon; with the horizon, units cut
    within it are covered near the nominal rate by intervals half as wide."""
    rng = np.random.default_rng(1)
    lives = rng.integers(150, 400, 300)
    units = np.repeat(np.arange(300), lives)
    truth = np.concatenate([np.arange(n)[::-1] for n in lives]).astype(float)
    pred = np.clip(np.minimum(truth, 125) + rng.normal(0, 3 + np.minimum(truth, 125) / 10), 0, None)
    every = fit_intervals(pred, truth, 0.9, units=units)
    near = fit_intervals(pred, truth, 0.9, units=units, horizon=150)
    assert every["high"][-1] > 100 > 40 > near["high"][-1]
    # test units: one cut each, uniform within 150 cycles of failure
    cut_truth = rng.uniform(0, 150, 4000).round()
    cut_pred = np.clip(np.minimum(cut_truth, 125) + rng.normal(0, 3 + np.minimum(cut_truth, 125) / 10), 0, None)
    low, high = apply_intervals(cut_pred, near)
    assert 0.87 <= np.mean((low <= cut_truth) & (cut_truth <= high)) <= 0.93
    far_low, far_high = apply_intervals(cut_pred, every)
    assert np.mean(high - low) < np.mean(far_high - far_low) / 2  # without it: wide, for the same coverage


def test_nasa_score_punishes_late_more_than_early():
    assert nasa_score(np.array([10.0]), np.array([0.0])) == pytest.approx(np.e - 1)
    assert nasa_score(np.array([0.0]), np.array([13.0])) == pytest.approx(np.e - 1)
    assert nasa_score(np.array([10.0]), np.array([0.0])) > nasa_score(np.array([0.0]), np.array([10.0]))


@pytest.fixture(scope="module")
def fleet():
    train, _ = run_to_failure(16, regimes=3, seed=0, n_sensors=4)
    test, truth = run_to_failure(16, regimes=3, seed=1, n_sensors=4, cut=True)
    return train, test, truth


@pytest.fixture(scope="module")
def fitted(fleet):
    return RulCNN(**SMALL).fit(fleet[0])


def test_rul_model_learns_degradation_under_several_regimes(fleet, fitted):
    _, test, truth = fleet
    assert fitted.train_info_["regimes"] == 3
    lives = fleet[0].groupby("unit").cycle.max() - fleet[0].groupby("unit").cycle.min()
    assert fitted.train_info_["interval_horizon"] == pytest.approx(np.median(lives))  # the default horizon
    p = fitted.predict(test)
    assert p.unit.tolist() == list(range(1, 17))
    m = rul_metrics(p.rul, p.rul_low, p.rul_high, truth)
    baseline = np.sqrt(np.mean((np.minimum(truth, 125) - np.mean(np.minimum(truth, 125))) ** 2))
    assert m["rmse"] < 0.6 * baseline, (m, baseline)
    assert np.all(p.rul_low <= p.rul) and np.all(p.rul <= p.rul_high) and np.all(p.rul_low >= 0)


def test_all_cycles_gives_one_row_per_cycle_ending_with_the_last(fleet, fitted):
    _, test, _ = fleet
    every = fitted.predict(test, all_cycles=True)
    last = fitted.predict(test)
    assert len(every.rul) == len(test)
    ends = np.flatnonzero(np.diff(np.append(every.unit, -1)))
    np.testing.assert_allclose(every.rul[ends], last.rul)


def test_predict_refuses_data_without_the_models_sensors(fleet, fitted):
    from linewatch.errors import LinewatchError

    _, test, _ = fleet
    with pytest.raises(LinewatchError, match="sensor_2"):
        fitted.predict(test.drop(columns=["sensor_2"]))


def test_fewer_units_than_folds_is_a_clear_error():
    from linewatch.errors import LinewatchError

    df, _ = run_to_failure(2, seed=0)
    with pytest.raises(LinewatchError, match="folds"):
        RulCNN(**{**SMALL, "folds": 3}).fit(df)
