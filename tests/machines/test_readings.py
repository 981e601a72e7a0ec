"""Readings storage on SQLite and PostgreSQL: stored once, roll-ups exact under repeats, tiers, pruning."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from linewatch.services import readings as R

T0 = 1_764_000_000_000  # ms, on a whole hour


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, postgres):
    from linewatch.store.db import make_engine, migrate

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres.database("lw_readings")) if request.param == "postgresql" else None
        eng = make_engine(url or f"sqlite:///{tmp_path / 'r.db'}")
        migrate(eng)
        try:
            yield eng
        finally:
            eng.dispose()


def _rows(sensor, ts, value) -> R.Rows:
    return R.Rows(np.asarray(sensor, np.int64), np.asarray(ts, np.int64), np.asarray(value, float))


def test_stored_once_and_rolled_up_exactly(engine):
    n = 7200  # two hours at 1 Hz, two sensors
    ts = T0 + np.arange(n) * 1000
    values = np.sin(np.arange(n) / 100.0)
    with engine.begin() as c:
        new = R.store(c, _rows(np.r_[np.full(n, 1), np.full(n, 2)], np.r_[ts, ts], np.r_[values, -values]))
    assert len(new) == 2 * n
    # the same readings again, mixed with new ones: only the new are stored and rolled up
    with engine.begin() as c:
        again = R.store(c, _rows(np.full(n + 10, 1), T0 + np.arange(n + 10) * 1000, np.r_[values, np.full(10, 5.0)]))
    assert len(again) == 10 and set(again.value) == {5.0}
    with engine.connect() as c:
        tier, step, got = R.query(c, [1, 2], T0, T0 + 3 * 3_600_000, 3, None)
        assert tier == "1h" and step == 3_600_000
        assert got[1].n == [3600, 3600, 10] and got[2].n == [3600, 3600]
        assert got[1].max == [pytest.approx(values[:3600].max()), pytest.approx(values[3600:].max()), 5.0]
        assert got[1].min[0] == pytest.approx(values[:3600].min())
        assert got[2].mean[0] == pytest.approx(-values[:3600].mean())
        tier, step, minutes = R.query(c, [1], T0, T0 + 2 * 3_600_000, 120, None)
        assert tier == "1m" and step == 60_000 and minutes[1].n == [60] * 120
        assert minutes[1].mean[5] == pytest.approx(values[300:360].mean())
        tier, step, raw = R.query(c, [1], T0, T0 + 60_000, 600, None)
        assert tier == "raw" and step == 100 and raw[1].n == [1] * 60
        assert raw[1].mean == pytest.approx(values[:60].tolist())
        # a range whose raw readings may have been pruned reads the minute roll-up
        assert R.query(c, [1], T0, T0 + 60_000, 600, T0 + 30_000)[0] == "1m"


def test_pruning_keeps_the_summary(engine):
    with engine.begin() as c:
        R.store(c, _rows(np.full(600, 3), T0 + np.arange(600) * 1000, np.ones(600)))
    with engine.begin() as c:
        dropped = R.prune(c, 3, T0 + 300_000, T0)
    assert dropped == 300
    with engine.connect() as c:
        assert sum(R.query(c, [3], T0, T0 + 600_000, 1000, None)[2][3].n) == 300  # raw: the newer half
        assert sum(R.query(c, [3], T0, T0 + 600_000, 5, None)[2][3].n) == 600  # minutes: all of it
    with engine.begin() as c:
        R.delete_sensors(c, [3])
    with engine.connect() as c:
        assert sum(R.query(c, [3], T0, T0 + 600_000, 5, None)[2][3].n) == 0


def test_the_cheapest_tier_that_still_draws_the_chart():
    day = 86_400_000
    assert R.choose(0, 30 * day, 1000, None) == ("1h", 3_600_000)  # 720 buckets
    assert R.choose(0, 7 * day, 1000, None) == ("10m", 1_200_000)  # 504 buckets from 1,008 rows
    assert R.choose(0, day, 1000, None) == ("1m", 120_000)
    assert R.choose(0, 3_600_000, 1000, None) == ("raw", 3_600)
    assert R.choose(0, 3_600_000, 1000, raw_since_ms=1) == ("1m", 60_000)  # raw readings pruned there
    assert R.choose(0, 3_600_000, 1000, raw_since_ms=1, minutes_since_ms=1) == ("10m", 600_000)
