"""Sensor readings in the database: written in batches, stored once, rolled up per minute and per hour as they
are written, pruned after their retention, and read back downsampled to a chart's width.

Times are integer milliseconds since the epoch (UTC). ``store`` inserts a batch and returns the rows that were
new (a reading delivered twice is stored once and counted once in the roll-ups). The roll-ups keep count, sum,
minimum and maximum, so buckets merge exactly and any coarser bucket is computed from them. A query picks the
finest tier whose resolution fits the requested number of points: raw readings for minutes to hours, the minute
roll-up for days, the hour roll-up for months.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

MINUTE_MS = 60_000
TEN_MINUTES_MS = 600_000
HOUR_MS = 3_600_000
SQLITE_ROWS = 5_000  # rows per multi-row INSERT on SQLite (3 parameters each, under its 32,766 limit)
TIERS = (("raw", 1), ("1m", MINUTE_MS), ("10m", TEN_MINUTES_MS), ("1h", HOUR_MS))
TABLE = {"raw": "readings", "1m": "readings_1m", "10m": "readings_10m", "1h": "readings_1h"}
# a coarser tier is read as long as it gives at least this share of the buckets asked for: a chart of 1,000 points
# over a month reads 720 hourly rows per sensor instead of 43,200 minutes (the points are min/max bands: a
# quarter of the width in buckets still draws every excursion)
MIN_SHARE = 0.25


@dataclass
class Rows:
    """Readings as three aligned arrays."""

    sensor: np.ndarray  # int64
    ts: np.ndarray  # int64, ms
    value: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Rows:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, float))

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.sensor for p in parts]),
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.value for p in parts]),
        )

    def take(self, index) -> Rows:
        return Rows(self.sensor[index], self.ts[index], self.value[index])


def _sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def store(conn: Connection, rows: Rows) -> Rows:
    """Insert the readings (inside the caller's transaction); those that were not stored before, with their
    minute and hour roll-ups updated by exactly them."""
    if not len(rows):
        return rows
    new = _insert_raw(conn, rows)
    if len(new):
        rollup(conn, new)
    return new


def _cursor(conn: Connection):
    """The DB-API cursor of the connection's transaction: the hot statements skip SQLAlchemy's row objects."""
    return conn.connection.dbapi_connection.cursor()


def _insert_raw(conn: Connection, rows: Rows) -> Rows:
    cur = _cursor(conn)
    try:
        if _sqlite(conn):
            got: list[tuple] = []
            flat = np.empty(len(rows) * 3, dtype=object)
            flat[0::3], flat[1::3], flat[2::3] = rows.sensor.tolist(), rows.ts.tolist(), rows.value.tolist()
            for start in range(0, len(rows), SQLITE_ROWS):
                n = min(SQLITE_ROWS, len(rows) - start)
                sql = (
                    "INSERT INTO readings (sensor_id, ts, value) VALUES "
                    + ",".join(["(?,?,?)"] * n)
                    + " ON CONFLICT DO NOTHING RETURNING sensor_id, ts, value"
                )
                cur.execute(sql, flat[start * 3 : (start + n) * 3].tolist())
                got.extend(cur.fetchall())
        else:
            cur.execute(
                "INSERT INTO readings (sensor_id, ts, value) SELECT * FROM unnest(%s::int[], %s::bigint[], "
                "%s::float8[]) ON CONFLICT DO NOTHING RETURNING sensor_id, ts, value",
                (rows.sensor.tolist(), rows.ts.tolist(), rows.value.tolist()),
            )
            got = cur.fetchall()
    finally:
        cur.close()
    if not got:
        return Rows.empty()
    sensor, ts, value = zip(*got, strict=True)  # plain tuples: NumPy reads them fast (SQLAlchemy rows slowly)
    return Rows(np.array(sensor, dtype=np.int64), np.array(ts, dtype=np.int64), np.array(value, dtype=float))


def aggregate(rows: Rows, width_ms: int) -> tuple[np.ndarray, ...]:
    """Per (sensor, bucket of ``width_ms``): sensor, bucket start, count, sum, min, max."""
    bucket = (rows.ts // width_ms) * width_ms
    order = np.lexsort((bucket, rows.sensor))
    s, b, v = rows.sensor[order], bucket[order], rows.value[order]
    starts = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]) | (b[1:] != b[:-1])])
    n = np.diff(np.r_[starts, len(s)])
    return (
        s[starts],
        b[starts],
        n,
        np.add.reduceat(v, starts),
        np.minimum.reduceat(v, starts),
        np.maximum.reduceat(v, starts),
    )


def rollup(conn: Connection, rows: Rows) -> None:
    for tier, width in TIERS[1:]:
        _merge(conn, TABLE[tier], aggregate(rows, width))


def _merge(conn: Connection, table: str, agg: tuple[np.ndarray, ...]) -> None:
    cols = [a.tolist() for a in agg]
    cur = _cursor(conn)
    try:
        if _sqlite(conn):
            flat = [x for row in zip(*cols, strict=True) for x in row]
            per = SQLITE_ROWS // 2
            for start in range(0, len(cols[0]), per):
                n = min(per, len(cols[0]) - start)
                sql = (
                    f"INSERT INTO {table} (sensor_id, bucket, n, vsum, vmin, vmax) VALUES "
                    + ",".join(["(?,?,?,?,?,?)"] * n)
                    + f" ON CONFLICT (sensor_id, bucket) DO UPDATE SET n = {table}.n + excluded.n, "
                    f"vsum = {table}.vsum + excluded.vsum, vmin = min({table}.vmin, excluded.vmin), "
                    f"vmax = max({table}.vmax, excluded.vmax)"
                )
                cur.execute(sql, flat[start * 6 : (start + n) * 6])
        else:
            cur.execute(
                f"INSERT INTO {table} (sensor_id, bucket, n, vsum, vmin, vmax) SELECT * FROM unnest(%s::int[], "
                "%s::bigint[], %s::int[], %s::float8[], %s::float8[], %s::float8[]) ON CONFLICT (sensor_id, bucket) "
                f"DO UPDATE SET n = {table}.n + excluded.n, vsum = {table}.vsum + excluded.vsum, "
                f"vmin = LEAST({table}.vmin, excluded.vmin), vmax = GREATEST({table}.vmax, excluded.vmax)",
                tuple(cols),
            )
    finally:
        cur.close()


# -- reading back ------------------------------------------------------------------------------------------------
@dataclass
class Series:
    """One sensor's buckets: start times (ms), count, mean, min and max."""

    t: list[int]
    n: list[int]
    mean: list[float]
    min: list[float]
    max: list[float]


def choose(
    start_ms: int, end_ms: int, points: int, raw_since_ms: int | None, minutes_since_ms: int | None = None
) -> tuple[str, int]:
    """The tier to read and the bucket width (ms) for about ``points`` buckets over the range: the coarsest tier
    that still gives ``MIN_SHARE`` of them (the cheapest read that draws the chart), never one finer than the
    buckets, and not the raw readings (or minutes) where they may have been pruned (before ``raw_since_ms``,
    ``minutes_since_ms``)."""
    span = max(end_ms - start_ms, 1)
    want = max(1, math.ceil(span / max(points, 1)))
    usable = [
        (tier, width)
        for tier, width in TIERS
        if not (tier == "raw" and raw_since_ms is not None and start_ms < raw_since_ms)
        and not (tier == "1m" and minutes_since_ms is not None and start_ms < minutes_since_ms)
    ]
    tier, width = usable[0]
    for t, w in usable:
        if span / w >= MIN_SHARE * points or w <= want:
            tier, width = t, w
    step = max(width, math.ceil(want / width) * width)
    return tier, step


def query(
    conn: Connection,
    sensor_ids: list[int],
    start_ms: int,
    end_ms: int,
    points: int,
    raw_since_ms: int | None,
    minutes_since_ms: int | None = None,
) -> tuple[str, int, dict[int, Series]]:
    """Each sensor's readings in [start, end), in buckets of one width: (tier, width in ms, series by sensor)."""
    tier, step = choose(start_ms, end_ms, points, raw_since_ms, minutes_since_ms)
    out = {sid: Series([], [], [], [], []) for sid in sensor_ids}
    if not sensor_ids:
        return tier, step, out
    ids = ",".join(str(int(s)) for s in sensor_ids)
    if tier == "raw":
        sql = (
            f"SELECT sensor_id, (ts / {step}) * {step} AS b, count(*), sum(value), min(value), max(value) "
            f"FROM readings WHERE sensor_id IN ({ids}) AND ts >= :a AND ts < :b GROUP BY sensor_id, b "
            "ORDER BY sensor_id, b"
        )
    else:
        table = TABLE[tier]
        sql = (
            f"SELECT sensor_id, (bucket / {step}) * {step} AS b, sum(n), sum(vsum), min(vmin), max(vmax) "
            f"FROM {table} WHERE sensor_id IN ({ids}) AND bucket >= :a AND bucket < :b GROUP BY sensor_id, b "
            "ORDER BY sensor_id, b"
        )
    a = (start_ms // dict(TIERS)[tier]) * dict(TIERS)[tier]
    for sid, b, n, vsum, vmin, vmax in conn.execute(text(sql), {"a": a, "b": end_ms}):
        s = out[sid]
        s.t.append(int(b))
        s.n.append(int(n))
        s.mean.append(float(vsum) / n)
        s.min.append(float(vmin))
        s.max.append(float(vmax))
    return tier, step, out


def prune(conn: Connection, sensor_id: int, raw_before_ms: int, minutes_before_ms: int) -> int:
    """Drop one sensor's raw readings before ``raw_before_ms`` and minute roll-ups before ``minutes_before_ms``
    (the roll-ups already hold them); the number of raw readings dropped."""
    done = conn.execute(
        text("DELETE FROM readings WHERE sensor_id = :s AND ts < :t"), {"s": sensor_id, "t": raw_before_ms}
    ).rowcount
    conn.execute(
        text("DELETE FROM readings_1m WHERE sensor_id = :s AND bucket < :t"), {"s": sensor_id, "t": minutes_before_ms}
    )
    return int(done or 0)


def delete_sensors(conn: Connection, sensor_ids: list[int]) -> None:
    """A deleted machine's or sensor's readings (they have no foreign key to cascade)."""
    if not sensor_ids:
        return
    ids = ",".join(str(int(s)) for s in sensor_ids)
    for table in TABLE.values():
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE sensor_id IN ({ids})")
