"""A fitted table detector scoring rows as they arrive (``linewatch.sensors.live.LiveTable``): in pieces of any size
it scores as the whole stream at once, through gaps, missing values and a wandering sensor; its kept rows survive
a save and a restore."""

import numpy as np
import pytest

from linewatch.errors import ModelFileError
from linewatch.sensors.live import LiveTable
from linewatch.sensors.methods import METHODS


def _stream(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    t[1500:] += 400  # a stop: the rows after it start a new segment
    x = np.column_stack(
        [
            np.sin(t / 20) + rng.normal(0, 0.1, n),
            2 + rng.normal(0, 0.05, n) + np.cumsum(rng.normal(0, 0.02, n)),  # wanders
            5 + rng.normal(0, 0.2, n),
            np.full(n, 7.0),  # constant: left out of the features
        ]
    )
    x[rng.random((n, 4)) < 0.03] = np.nan
    x[1800:1804, 0] = x[2200:2205, 1] = np.nan  # readings missing for a few steps: carried forward
    x[2600:2620, 0] += 3  # a fault in the first sensor
    return x, t


@pytest.fixture(scope="module")
def fitted():
    x, t = _stream()
    det = METHODS.create("mahalanobis", windows=[5, 20], lags=[2]).fit(x[:1200], t[:1200], sensors=list("abcd"))
    assert det.pipeline_.wandering_[1]  # the wandering sensor is judged against its recent level
    return det, x, t


def _pieces(n: int, seed: int):
    """60 pieces of random sizes, and one row at a time while the longest look-back (the wandering sensor's level over
    120 rows) leaves the missing readings behind."""
    rng = np.random.default_rng(seed)
    cuts = {*rng.choice(np.arange(1, n), size=60, replace=False).tolist(), *range(1910, 1940), *range(2310, 2340)}
    cuts = sorted(cuts)
    return list(zip([0, *cuts], [*cuts, n], strict=True))


def test_a_stream_in_pieces_scores_as_the_whole_stream(fitted):
    det, x, t = fitted
    whole = det.score(x, t)
    live = LiveTable(det)
    got = [live.update(x[a:b], t[a:b]) for a, b in _pieces(len(x), seed=1)]
    scores = np.concatenate([g[0] for g in got])
    np.testing.assert_allclose(scores, whole, rtol=1e-6, atol=1e-6)  # pandas' running sums round apart by ~1e-8
    alerts = np.concatenate([g[2] for g in got])
    np.testing.assert_array_equal(alerts, whole > det.threshold_)
    assert alerts[2600:2620].any() and len(live.values_) == live.context


def test_each_row_names_the_sensor_that_drove_it(fitted):
    det, x, t = fitted
    live = LiveTable(det)
    scores, shares, alerts = live.update(x, t)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert (shares[:, 3] == 0).all()  # the constant sensor takes no share
    fault = np.flatnonzero(alerts[2600:2620]) + 2600
    assert (shares[fault].argmax(axis=1) == 0).mean() > 0.8


def test_kept_rows_survive_a_save_and_a_restore(fitted, tmp_path):
    det, x, t = fitted
    whole = det.score(x, t)
    live = LiveTable(det)
    live.update(x[:1700], t[:1700])
    live.save(tmp_path / "live")
    again = LiveTable(det).restore(tmp_path / "live")
    np.testing.assert_allclose(again.update(x[1700:], t[1700:])[0], whole[1700:], rtol=1e-6, atol=1e-6)

    other = METHODS.create("mahalanobis").fit(x[:1200, :2], t[:1200], sensors=["a", "b"])
    with pytest.raises(ModelFileError, match="another model"):
        LiveTable(other).restore(tmp_path / "live")
    (tmp_path / "live" / "state.npz").write_bytes(b"not numpy")
    with pytest.raises(ModelFileError, match="not a live table state"):
        LiveTable(det).restore(tmp_path / "live")


def test_rows_of_another_width_or_mixed_times_are_refused(fitted):
    det, x, t = fitted
    live = LiveTable(det)
    with pytest.raises(ValueError, match="rows of 4 sensors"):
        live.update(x[:10, :3], t[:10])
    live.update(x[:10], t[:10])
    with pytest.raises(ValueError, match="times with every batch"):
        live.update(x[10:20])
