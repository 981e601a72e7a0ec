"""Sensor data from files: CSV or Parquet, one file or a folder of them (each file its own series, so windows
never span two files). Every check a user's file can fail is made here, once, with a message that names the
file and what to do: an unreadable file, no numeric column, an unknown column, an all-missing sensor, times
out of order or repeated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from linewatch.errors import LinewatchError

SUFFIXES = (".csv", ".parquet", ".pq", ".tsv", ".txt")


@dataclass
class Series:
    """One file's rows: sensor values (float, NaN for missing), times as numbers (seconds or row numbers) and
    as the user wrote them, and labels when asked for."""

    name: str
    sensors: list[str]
    values: np.ndarray  # (n, d)
    times: np.ndarray | None  # (n,) float seconds, strictly increasing
    stamps: list  # what the user's time column held (or row numbers)
    labels: np.ndarray | None = None
    time_column: str | None = None  # the column the times came from


#: column names read as the time column when none is named (``find_time``), compared without case
TIME_NAMES = ("time", "timestamp", "datetime", "date_time", "ts")


def data_files(path: Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise LinewatchError(f"data not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise LinewatchError(f"{path} holds no CSV or Parquet files")
        return files
    return [path]


def read_frame(path: Path) -> pd.DataFrame:
    """A file as a DataFrame; the CSV delimiter is sniffed (SKAB writes ';')."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep=None, engine="python", encoding="utf-8-sig")
    except Exception as e:  # pandas and pyarrow raise many types for a bad file
        raise LinewatchError(f"cannot read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if df.empty:
        raise LinewatchError(f"{path} has no rows")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def sensor_columns(df: pd.DataFrame, path: Path, exclude: set[str]) -> list[str]:
    cols = [c for c in df.columns if c not in exclude and _numeric(df[c])]
    if not cols:
        raise LinewatchError(f"{path} has no numeric sensor columns (columns: {', '.join(df.columns)})")
    return cols


#: a column of text is a sensor when at least this share of its non-empty cells are numbers: the rest ("ERR", "n/a",
#: "---" where a reading dropped out, as plant exports write them) are read as missing
NUMERIC_SHARE = 0.9


def _numbers(col: pd.Series) -> bool:
    """Whether a column is stored as numbers (not true/false)."""
    return bool(pd.api.types.is_numeric_dtype(col)) and not pd.api.types.is_bool_dtype(col)


def _numeric(col: pd.Series) -> bool:
    """Whether a column holds a sensor's readings: numbers, or text that is numbers but for a few cells."""
    if _numbers(col):
        return True
    if pd.api.types.is_bool_dtype(col):
        return False
    if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
        return False  # times, categories
    cells = col.dropna().astype(str).str.strip()
    cells = cells[cells != ""]
    return bool(len(cells)) and float(pd.to_numeric(cells, errors="coerce").notna().mean()) >= NUMERIC_SHARE


def parse_times(col: pd.Series, path: Path, name: str) -> np.ndarray:
    """Times as float seconds (numbers are taken as given); strictly increasing or an error."""
    if pd.api.types.is_numeric_dtype(col):
        t = col.to_numpy(dtype=float)
    else:
        try:
            parsed = pd.to_datetime(col, errors="coerce", format="mixed")
        except ValueError:  # offsets that differ (a change to or from summer time): the instants they name, in UTC
            parsed = pd.to_datetime(col, errors="coerce", format="mixed", utc=True)
        if parsed.isna().any():
            bad = col[parsed.isna()].iloc[0]
            raise LinewatchError(f"{path}: time column {name!r} has a value that is not a time: {bad!r}")
        t = (parsed - parsed.iloc[0]).dt.total_seconds().to_numpy(dtype=float)
    if np.isnan(t).any():
        raise LinewatchError(f"{path}: time column {name!r} has missing values")
    step = np.diff(t)
    if (step < 0).any():
        i = int(np.flatnonzero(step < 0)[0]) + 1
        raise LinewatchError(f"{path}: times are not sorted (row {i + 1} is earlier than row {i}): sort by {name}")
    if (step == 0).any():
        i = int(np.flatnonzero(step == 0)[0]) + 1
        raise LinewatchError(f"{path}: duplicate timestamp {col.iloc[i]!r} (rows {i} and {i + 1}): one row per time")
    return t


def load_series(
    path: Path,
    *,
    columns: list[str] | None = None,
    time_column: str | None = None,
    label_column: str | None = None,
    find_time: bool = False,
) -> list[Series]:
    """Every file under ``path`` as a :class:`Series` of the same sensor columns. Without ``columns`` the
    numeric columns of the first file (less the time and label columns) are the sensors. ``find_time``: without a
    ``time_column``, the first file's column named like a time (``TIME_NAMES``) is it, when there is one."""
    out = []
    for f in data_files(path):
        df = read_frame(f)
        if find_time and time_column is None:
            taken = {label_column, *(columns or ())}
            time_column = next((c for c in df.columns if c.lower() in TIME_NAMES and c not in taken), None)
        for name, what in ((time_column, "time"), (label_column, "label")):
            if name is not None and name not in df.columns:
                raise LinewatchError(f"{f} has no {what} column {name!r} (columns: {', '.join(df.columns)})")
        if columns is None:
            columns = sensor_columns(df, f, {c for c in (time_column, label_column) if c})
        unknown = [c for c in columns if c not in df.columns]
        if unknown:
            raise LinewatchError(
                f"{f} has no column {', '.join(map(repr, unknown))} (columns: {', '.join(df.columns)})"
            )
        text = [c for c in columns if not _numbers(df[c])]
        if text:
            converted = df[text].apply(pd.to_numeric, errors="coerce")
            bad = [c for c in text if converted[c].isna().all()]
            if bad:
                raise LinewatchError(f"{f}: column {', '.join(map(repr, bad))} is not numeric")
            df[text] = converted
        values = df[columns].to_numpy(dtype=float, copy=True)  # written below: never a view of the frame
        empty = [c for c, ok in zip(columns, np.isfinite(values).any(axis=0), strict=True) if not ok]
        if empty:
            raise LinewatchError(f"{f}: sensor column {', '.join(map(repr, empty))} has no values (all missing)")
        values[~np.isfinite(values)] = np.nan
        times = parse_times(df[time_column], f, time_column) if time_column else None
        stamps = df[time_column].tolist() if time_column else list(range(len(df)))
        labels = None
        if label_column:
            lab = pd.to_numeric(df[label_column], errors="coerce")
            if lab.isna().any():
                raise LinewatchError(f"{f}: label column {label_column!r} must be 0/1 on every row")
            labels = lab.to_numpy() > 0
        out.append(Series(f.name, list(columns), values, times, stamps, labels, time_column))
    return out
