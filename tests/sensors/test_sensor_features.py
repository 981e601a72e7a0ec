"""The feature pipeline's documented handling of missing values, gaps, segment starts and constant sensors."""

import numpy as np
import pytest

from linewatch.errors import LinewatchError
from linewatch.sensors.features import FeaturePipeline


def fitted(x, times=None, **kw):
    return FeaturePipeline(**kw).fit([(x, times)], ["a", "b", "c"])


def test_features_are_standardised_and_named(normal):
    p = fitted(normal)
    f = p.transform(normal)
    assert f.shape == (len(normal), len(p.feature_names()))
    assert abs(f[100:].mean()) < 0.2
    assert "a:mean10" in p.feature_names() and "c:diff1" in p.feature_names()


def test_short_gap_is_carried_forward_and_long_gap_reads_normal(normal):
    p = fitted(normal, fill_limit=3)
    x = normal[:300].copy()
    x[100:102, 0] = np.nan
    f = p.transform(x)
    value = p.feature_names().index("a:value")
    assert f[101, value] == pytest.approx(f[99, value])
    x[150:250, 0] = np.nan
    f = p.transform(x)
    assert np.isfinite(f).all()
    assert f[200, value] == pytest.approx(-p.feature_mean_[value] / p.feature_scale_[value])


def test_a_time_gap_restarts_the_windows(normal):
    times = np.arange(len(normal), dtype=float)
    p = fitted(normal, times)
    x = normal[:200].copy()
    t = np.arange(200, dtype=float)
    t[100:] += 10_000
    x[100:] += 5.0  # a different level after the gap: the windows must not mix the two
    f = p.transform(x, t)
    mean10 = p.feature_names().index("a:mean10")
    assert f[100, mean10] == pytest.approx(0.0)  # not enough history yet: neutral
    assert len(p.segments(t, 200)) == 2


def test_segment_start_is_neutral(normal):
    p = fitted(normal)
    f = p.transform(normal[:3])
    std30 = p.feature_names().index("b:std30")
    assert (f[:, std30] == 0).all()


def test_constant_sensor_is_left_out(normal):
    x = normal.copy()
    x[:, 2] = 7.0
    p = fitted(x)
    assert p.kept == ["a", "b"]
    assert p.transform(x).shape[1] == 2 * len(p.kinds())


def test_all_missing_or_all_constant_is_refused(normal):
    x = normal.copy()
    x[:, 1] = np.nan
    with pytest.raises(LinewatchError, match="no values"):
        fitted(x)
    with pytest.raises(LinewatchError, match="constant"):
        fitted(np.ones((100, 3)))
