"""The streaming detector: alerts on a sudden change, not on slow drift; checkpoint/restore loses nothing."""

import numpy as np
import pytest

from linewatch.core.estimator import NotFittedError
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.streaming import StreamingDetector


def block(n=3000, series=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return 10 + np.sin(t / 50 + np.arange(series)) + rng.normal(0, 0.1, (n, series))


def test_a_level_shift_alerts_on_its_series_only():
    x = block()
    x[2000:, 2] += 3.0
    det = StreamingDetector().start(4, ["p", "q", "r", "s"])
    _, alerts = det.update_many(x)
    assert alerts[2000:2050, 2].any()
    assert not alerts[:2000].any()
    assert not alerts[:, [0, 1, 3]].any()


def test_slow_drift_does_not_alert():
    x = block() + np.linspace(0, 5, 3000)[:, None]  # 5 units over the run, 50x the noise
    _, alerts = StreamingDetector().start(4).update_many(x)
    assert alerts.mean() < 0.001


def test_no_alert_during_the_learning_period():
    x = block(600)
    x[100:110, 0] += 50
    _, alerts = StreamingDetector(learning_period=300).start(4).update_many(x)
    assert not alerts[:300].any()


def test_missing_points_leave_the_state_untouched():
    d = StreamingDetector(suppress=20).start(2)
    d.update_many(block(500, 2))
    before = d.state()
    score, alert = d.update(np.array([np.nan, 10.0]))
    after = d.state()
    assert score[0] == 0 and not alert[0]
    assert set(before) == set(after) and "count" in before
    for k in before:  # every state array, the point count included
        assert after[k][0] == before[k][0], k
    assert after["count"][1] == before["count"][1] + 1


def test_a_series_with_gaps_scores_as_if_the_gaps_were_not_there():
    x = block(1500, 1)[:, 0]
    x[1200:] += 5.0
    gaps = np.zeros(len(x), dtype=bool)
    gaps[[5, 50, 400, 401, 402, 1100, 1201]] = True
    with_gaps = np.where(gaps, np.nan, x)
    s_gaps, a_gaps = StreamingDetector(suppress=50).start(1).update_many(with_gaps)
    s_dense, a_dense = StreamingDetector(suppress=50).start(1).update_many(x[~gaps])
    assert a_dense.any()
    np.testing.assert_array_equal(s_gaps[~gaps], s_dense)
    np.testing.assert_array_equal(a_gaps[~gaps], a_dense)
    assert (s_gaps[gaps] == 0).all() and not a_gaps[gaps].any()


def test_checkpoint_and_restore_continue_exactly(tmp_path):
    x = block()
    x[2500:, 1] += 2.0
    whole = StreamingDetector(alpha=0.02).start(4)
    s_whole, a_whole = whole.update_many(x)
    first = StreamingDetector(alpha=0.02).start(4)
    s1, a1 = first.update_many(x[:1700])
    first.save(tmp_path / "ckpt")
    restored = StreamingDetector.load(tmp_path / "ckpt")
    assert restored.config() == first.config()
    s2, a2 = restored.update_many(x[1700:])
    np.testing.assert_array_equal(np.vstack([s1, s2]), s_whole)
    np.testing.assert_array_equal(np.vstack([a1, a2]), a_whole)
    np.load(tmp_path / "ckpt" / "state.npz", allow_pickle=False)


def test_bad_use_is_a_user_error(tmp_path):
    with pytest.raises(NotFittedError):
        StreamingDetector().update(np.zeros(3))
    with pytest.raises(LinewatchError, match="expected 3"):
        StreamingDetector().start(3).update(np.zeros(2))
    with pytest.raises(LinewatchError):
        StreamingDetector(alpha=2.0).start(3)
    with pytest.raises(ModelFileError):
        StreamingDetector.load(tmp_path)


def test_the_plain_float_loop_matches_the_vectorised_step():
    x = block(2500, 3)
    x[2000:, 1] += 3.0
    x[100:140, 2] = np.nan
    x[1500, 0] += 50
    loop = StreamingDetector(suppress=100).start(3)
    s_loop, a_loop = loop.update_many(x)  # 3 series: one plain-float loop per series
    step = StreamingDetector(suppress=100).start(3)
    rows = [step.update(r) for r in x]  # one vectorised step per row
    assert a_loop[2000:2050, 1].any()
    np.testing.assert_allclose(s_loop, np.array([r[0] for r in rows]), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(a_loop, np.array([r[1] for r in rows]))
    for k, v in loop.state().items():
        np.testing.assert_allclose(v, step.state()[k], rtol=1e-12, err_msg=k)
