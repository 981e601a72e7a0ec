"""Every distribution samples around its declared mean; bad parameters are named; intervals cover."""

from __future__ import annotations

import random
import statistics

import pytest
from pydantic import TypeAdapter, ValidationError

from linewatch.twin.distributions import Dist
from linewatch.twin.experiments import stat

SPECS = [
    7.5,
    {"dist": "exponential", "mean": 10},
    {"dist": "normal", "mean": 10, "sd": 1},
    {"dist": "lognormal", "mean": 10, "cv": 0.5},
    {"dist": "gamma", "mean": 10, "cv": 0.5},
    {"dist": "uniform", "low": 5, "high": 15},
    {"dist": "triangular", "low": 4, "mode": 10, "high": 16},
    {"dist": "weibull", "shape": 1.5, "scale": 10},
    {"dist": "empirical", "values": [8, 10, 12]},
]


@pytest.mark.parametrize("spec", SPECS)
def test_samples_match_the_mean(spec):
    d = TypeAdapter(Dist).validate_python(spec)
    draw = d.sampler(random.Random(1))
    xs = [draw() for _ in range(20000)]
    assert min(xs) >= 0
    assert statistics.fmean(xs) == pytest.approx(d.mean_value, rel=0.03)
    assert d.scaled(60).mean_value == pytest.approx(60 * d.mean_value)
    assert TypeAdapter(Dist).validate_python(d.to_json()) == d


@pytest.mark.parametrize(
    "spec, message",
    [
        (-1, "must be >= 0"),
        ({"dist": "normal", "mean": 5}, "normal needs sd"),
        ({"dist": "uniform", "low": 5, "high": 1}, "needs 0 <= low <= high"),
        ({"dist": "exponential", "mean": 5, "sd": 1}, "exponential takes mean, not sd"),
        ({"dist": "beta"}, "dist must be one of"),
        ("fast", "expected a number of seconds"),
        (True, "expected a number of seconds"),
    ],
)
def test_bad_parameters(spec, message):
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(Dist).validate_python(spec)


def test_t_interval():
    s = stat([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.half_width == pytest.approx(3.182446 * statistics.stdev([1, 2, 3, 4]) / 2, rel=1e-5)
    assert stat([5.0]).n == 1 and stat([]).n == 0
