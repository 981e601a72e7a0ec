"""The surprise detector: a broken cycle, a flat stretch at a new level and a spike alert once each, on their own
series only; nothing during learning or on a clean cycle; gaps, series independence and checkpoints exact."""

import json

import numpy as np
import pytest

from linewatch.core.estimator import NotFittedError
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.surprise import BINS, SurpriseDetector


def cycles(n=2000, series=3, seed=0, period=100):
    """A square-ish daily cycle with noise, as NAB's artificial series (the period in points)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    phase = (t + 37 * np.arange(series)) % period
    return np.where(phase < period // 2, 80.0, 20.0) + rng.normal(0, 2, (n, series))


def alerts_of(x, **params):
    det = SurpriseDetector(learning_period=400, **params).start(x.shape[1])
    scores, alerts = det.update_many(x)
    return det, scores, alerts


def test_a_clean_cycle_does_not_alert_and_learning_is_quiet():
    x = cycles()
    x[100:110, 0] += 500  # a spike in the learning period
    _, scores, alerts = alerts_of(x)
    assert not alerts[:400].any()
    assert alerts[400:].sum() <= 2  # noise may surprise once or twice in 3 x 1,600 points
    assert scores.min() >= 0 and scores.max() <= 1


def test_a_flat_stretch_at_a_new_level_alerts_on_its_series_only():
    x = cycles()
    x[1500:1600, 1] = 50.0  # the cycle stops half way between its two levels
    _, _, alerts = alerts_of(x)
    assert alerts[1500:1550, 1].any()
    assert alerts[400:1500].sum() <= 2


def test_a_spike_beyond_the_range_alerts_once():
    x = cycles()
    x[1800, 2] = 200.0
    _, scores, alerts = alerts_of(x)
    assert alerts[1800, 2] and scores[1800, 2] == 1.0
    assert alerts[1801:1900, 2].sum() <= 1


def test_series_are_independent():
    x = cycles(series=10)  # over 8 series: one vectorised step per row; alone: the plain-float loop
    x[1500:1600, 1] = 50.0
    _, together, _ = alerts_of(x)
    _, alone, _ = alerts_of(x[:, 1:2])
    np.testing.assert_array_equal(together[:, 1], alone[:, 0])


def test_missing_points_leave_the_state_untouched_and_gaps_score_as_if_absent():
    x = cycles(2000, 1)[:, 0]
    x[1500:1600] = 50.0
    gaps = np.zeros(len(x), dtype=bool)
    gaps[[5, 50, 700, 701, 702, 1400, 1550]] = True
    s_gaps, a_gaps = SurpriseDetector(learning_period=400).start(1).update_many(np.where(gaps, np.nan, x))
    s_dense, a_dense = SurpriseDetector(learning_period=400).start(1).update_many(x[~gaps])
    assert a_dense.any()
    np.testing.assert_array_equal(s_gaps[~gaps], s_dense)
    np.testing.assert_array_equal(a_gaps[~gaps], a_dense)
    assert (s_gaps[gaps] == 0).all() and not a_gaps[gaps].any()
    det = SurpriseDetector().start(2)
    det.update_many(cycles(300, 2))
    before = det.state()
    det.update(np.array([np.nan, 10.0]))
    after = det.state()
    for k in before:
        np.testing.assert_array_equal(after[k][0], before[k][0], err_msg=k)
    assert after["count"][1] == before["count"][1] + 1


def test_the_level_histogram_grows_with_the_range_and_counts_close_to_exactly():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1, 1000), rng.normal(0, 1, 200) * 1000])  # the range grows 1000x
    det = SurpriseDetector().start(1)
    det.update_many(values)
    assert det.h_width_[0, 0] > 0
    assert det.hist_[0, 0].sum() == len(values)
    lo, hi = det.lo_[0], det.hi_[0]
    for x in (0.0, 500.0, -2000.0):
        band = 0.02 * (hi - lo)
        near = det._level_share(0, np.array([x]), np.array([True]), np.array([band]))[0]
        exact = np.sum(np.abs(values - x) <= band)
        edge = 2 * det.h_width_[0, 0]  # whole bins at the band's two ends
        assert exact <= near <= np.sum(np.abs(values - x) <= band + edge)


def test_per_series_learning_periods():
    x = cycles(1200, 2)
    x[400, :] = 500.0
    det = SurpriseDetector().start(2, learning_periods=[300, 800])
    _, alerts = det.update_many(x)
    assert alerts[400, 0] and not alerts[:800, 1].any()
    with pytest.raises(LinewatchError, match="learning_periods"):
        SurpriseDetector().start(2, learning_periods=[300])


def test_checkpoint_and_restore_continue_exactly(tmp_path):
    x = cycles()
    x[1500:1600, 1] = 50.0
    x[1800, 2] = np.nan
    s_whole, a_whole = SurpriseDetector(learning_period=400).start(3).update_many(x)
    first = SurpriseDetector(learning_period=400).start(3, names=["a", "b", "c"])
    s1, a1 = first.update_many(x[:1300])
    first.save(tmp_path / "ckpt")
    restored = SurpriseDetector.load(tmp_path / "ckpt")
    assert restored.config() == first.config() and restored.names_ == ["a", "b", "c"]
    s2, a2 = restored.update_many(x[1300:])
    np.testing.assert_array_equal(np.vstack([s1, s2]), s_whole)
    np.testing.assert_array_equal(np.vstack([a1, a2]), a_whole)
    arrays = np.load(tmp_path / "ckpt" / "state.npz", allow_pickle=False)
    assert arrays["hist"].shape == (3, 2, BINS)


def test_bad_use_and_bad_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(NotFittedError):
        SurpriseDetector().update(np.zeros(3))
    with pytest.raises(LinewatchError, match="expected 3"):
        SurpriseDetector().start(3).update(np.zeros(2))
    with pytest.raises(LinewatchError):
        SurpriseDetector(radius=-1.0).start(3)
    with pytest.raises(ModelFileError):
        SurpriseDetector.load(tmp_path)
    SurpriseDetector().start(2).save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "state.json").read_text())
    (tmp_path / "ck" / "state.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelFileError, match="newer"):
        SurpriseDetector.load(tmp_path / "ck")
    (tmp_path / "ck" / "state.json").write_text(json.dumps({**meta, "kind": "stream"}))
    with pytest.raises(ModelFileError, match="stream"):
        SurpriseDetector.load(tmp_path / "ck")


def test_the_plain_float_loop_matches_the_vectorised_step_bit_for_bit():
    x = cycles(1500, 3)
    x[1000:1100, 1] = 50.0
    x[100:140, 2] = np.nan
    x[700, 0] = 5000.0  # the histograms double their bins
    x[:30, 2] = 7.0  # a constant start: the bins are laid out late
    loop = SurpriseDetector(learning_period=300).start(3)
    s_loop, a_loop = loop.update_many(x)  # 3 series: one plain-float loop per series
    step = SurpriseDetector(learning_period=300).start(3)
    rows = [step.update(r) for r in x]  # one vectorised step per row
    assert a_loop[1000:1050, 1].any() and a_loop[700, 0]
    np.testing.assert_array_equal(s_loop, np.array([r[0] for r in rows]))
    np.testing.assert_array_equal(a_loop, np.array([r[1] for r in rows]))
    for k, v in loop.state().items():
        np.testing.assert_array_equal(v, step.state()[k], err_msg=k)
