"""The readings payload: every documented shape, and each kind of bad reading refused with its reason."""

from __future__ import annotations

import math

import numpy as np
import pytest

from linewatch.services.payloads import PayloadError, parse

NOW = 1_764_756_000_000  # ms
FUTURE = 300_000


def _flat(parsed) -> dict:
    return {k: (list(map(int, t)), list(map(float, v))) for k, (t, v) in parsed.sensors.items()}


def test_one_reading_a_time_step_and_column_batches():
    assert _flat(parse({"sensor": "a", "value": 1.5, "time": 1764755999.5}, NOW, FUTURE)) == {
        "a": ([1764755999500], [1.5])
    }
    got = parse({"time": "2025-12-03T09:59:59Z", "values": {"a": 1, "b": 2.5}}, NOW, FUTURE)
    assert _flat(got) == {"a": ([1764755999000], [1.0]), "b": ([1764755999000], [2.5])}
    batch = parse({"time": [1.0, 2.0, 3.0], "values": {"a": [1, 2, None], "b": [4, 5, 6]}}, NOW, FUTURE)
    assert _flat(batch) == {"a": ([1000, 2000], [1.0, 2.0]), "b": ([1000, 2000, 3000], [4.0, 5.0, 6.0])}
    assert not batch.refused  # None is no reading, not a bad one
    one = parse({"sensor": "a", "time": [1.0, 2.0], "values": [7, 8]}, NOW, FUTURE)
    assert _flat(one) == {"a": ([1000, 2000], [7.0, 8.0])}
    listed = parse(
        {"readings": [{"sensor": "a", "value": 1, "time": 1}, {"sensor": "a", "value": 2, "time": 2}]}, NOW, FUTURE
    )
    assert _flat(listed) == {"a": ([1000, 2000], [1.0, 2.0])}


def test_time_left_out_is_the_arrival_time():
    assert _flat(parse({"sensor": "a", "value": 3}, NOW, FUTURE)) == {"a": ([NOW], [3.0])}


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"sensor": "a", "value": "hot", "time": 1}, "value not a finite number"),
        ({"sensor": "a", "value": True, "time": 1}, "value not a finite number"),
        ({"sensor": "a", "value": math.nan, "time": 1}, "value not a finite number"),
        ({"sensor": "a", "value": math.inf, "time": 1}, "value not a finite number"),
        ({"sensor": "a", "value": 1, "time": "yesterday"}, "time not readable (seconds since the epoch or ISO 8601)"),
        ({"sensor": "a", "value": 1, "time": -5}, "time not readable (seconds since the epoch or ISO 8601)"),
        ({"sensor": "a", "value": 1, "time": NOW / 1000 + 3600}, "time too far in the future"),
        ({"sensor": 5, "value": 1}, "sensor name missing or not a string"),
        ({"sensor": "a"}, "no value"),
        ({"time": [1, 2], "values": {"a": [1]}}, "time and values lists of different lengths"),
        ({"values": 3}, "neither sensor and value nor values"),
        (["not an object"], "item not a JSON object"),
    ],
)
def test_bad_readings_are_refused_with_the_reason(payload, reason):
    got = parse(payload, NOW, FUTURE)
    assert not got.sensors and set(got.refused) == {reason}


def test_good_readings_beside_bad_ones_are_kept():
    got = parse({"time": [1, "x", 3], "values": {"a": [1.0, 2.0, "z"]}}, NOW, FUTURE)
    assert _flat(got) == {"a": ([1000], [1.0])}
    assert got.refused == {"time not readable (seconds since the epoch or ISO 8601)": 1, "value not a finite number": 1}


def test_a_huge_message_is_refused_whole():
    with pytest.raises(PayloadError, match="split it"):
        parse({"time": np.arange(1_000_001).tolist(), "values": {"a": [1.0] * 1_000_001}}, NOW, FUTURE)
