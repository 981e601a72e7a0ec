"""Reading maintenance data: C-MAPSS text files as NASA ships them (space separated, 26 columns, no header), and
CSV or Parquet tables with named columns. Every problem a user can cause is a :class:`DataError` with one line
saying what is wrong with which file, because the command line turns it into exit status 2."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from linewatch.errors import LinewatchError

CMAPSS_COLUMNS = ["unit", "cycle", "setting_1", "setting_2", "setting_3", *[f"sensor_{i}" for i in range(1, 22)]]
UNIT_NAMES = ("unit", "unit_id", "unit_number", "machine", "machine_id", "engine", "engine_id", "id")
CYCLE_NAMES = ("cycle", "cycles", "time", "time_cycles", "t", "step")
RUL_NAMES = ("rul",)
LABEL_NAMES = ("machinefailure", "failure", "failed", "label")  # 0/1 failure labels: never sensors
MODE_PATTERN = r"[A-Z]{2,5}F"  # failure-mode label columns (AI4I's TWF, HDF, PWF, OSF, RNF)


class DataError(LinewatchError):
    """A data file that cannot be read as maintenance data."""


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def read_table(path: str | Path) -> pd.DataFrame:
    """Any supported file as a DataFrame: ``.parquet``; ``.csv``; otherwise C-MAPSS text when its first line is
    whitespace-separated numbers, CSV when it has commas."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    if p.is_dir():
        raise DataError(f"{p} is a folder; give a data file (C-MAPSS .txt, .csv or .parquet)")
    try:
        if p.suffix.lower() == ".parquet":
            df = pd.read_parquet(p)
        else:
            with open(p, encoding="utf-8-sig", errors="strict") as f:
                first = f.readline()
            if not first.strip():
                raise DataError(f"{p} is empty")
            is_csv = "," in first or p.suffix.lower() == ".csv"
            df = pd.read_csv(p, encoding="utf-8-sig") if is_csv else _read_cmapss(p)
    except DataError:
        raise
    except UnicodeDecodeError:
        raise DataError(f"{p} is not a text table (C-MAPSS .txt, .csv) or a .parquet file") from None
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{p} cannot be read as a table: {str(e).splitlines()[0][:200]}") from None
    except Exception as e:  # pyarrow raises its own types on a corrupt Parquet file
        raise DataError(f"{p} cannot be read: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if df.empty:
        raise DataError(f"{p} holds no rows")
    return df


def _read_cmapss(p: Path) -> pd.DataFrame:
    df = pd.read_csv(p, sep=r"\s+", header=None, engine="python")
    if df.shape[1] != len(CMAPSS_COLUMNS):
        raise DataError(
            f"{p}: {df.shape[1]} columns; C-MAPSS text has {len(CMAPSS_COLUMNS)} (unit, cycle, 3 settings, 21 sensors)"
        )
    if not all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes):
        raise DataError(f"{p}: C-MAPSS text must hold only numbers")
    df.columns = CMAPSS_COLUMNS
    return df


@dataclass
class Histories:
    """Sensor histories of several units: rows sorted by unit then cycle."""

    units: np.ndarray  # (n,) int64
    cycles: np.ndarray  # (n,) float64
    settings: np.ndarray  # (n, s) float64, may have 0 columns
    sensors: np.ndarray  # (n, f) float64
    setting_names: list[str]
    sensor_names: list[str]
    rul: np.ndarray | None = None  # (n,) when the table gives it
    filled: int = 0  # missing readings (empty or non-numeric cells) filled from the unit's neighbouring cycles

    def starts(self) -> np.ndarray:
        """Index of each unit's first row, plus the end: unit i is rows starts[i]:starts[i+1]."""
        change = np.flatnonzero(np.diff(self.units)) + 1
        return np.concatenate([[0], change, [len(self.units)]])

    def unit_ids(self) -> np.ndarray:
        return self.units[self.starts()[:-1]]

    def rul_to_failure(self) -> np.ndarray:
        """RUL of every row: the table's own column, else cycles to the unit's last one (run to failure)."""
        if self.rul is not None:
            return self.rul.astype(np.float64)
        out = np.empty(len(self.units))
        b = self.starts()
        for s, e in zip(b[:-1], b[1:], strict=True):
            out[s:e] = self.cycles[e - 1] - self.cycles[s:e]
        return out


def is_label(column: str) -> bool:
    """A failure label or failure-mode column, by name: such a column is an outcome, never an input."""
    return _key(column) in LABEL_NAMES or bool(re.fullmatch(MODE_PATTERN, column))


def _find(columns: list[str], names: tuple[str, ...]) -> str | None:
    keys = {_key(c): c for c in columns}
    return next((keys[n] for n in names if n in keys), None)


def histories(
    df: pd.DataFrame,
    source: str = "data",
    *,
    sensor_names: list[str] | None = None,
    setting_names: list[str] | None = None,
) -> Histories:
    """Unit/cycle sensor histories from a table. Settings are the columns named ``setting*`` / ``op_setting*``;
    every other numeric column is a sensor. A fitted model passes its own names so a table missing one is refused
    by name instead of silently scored on other columns."""
    cols = [str(c) for c in df.columns]
    df = df.set_axis(cols, axis=1)
    unit_col, cycle_col = _find(cols, UNIT_NAMES), _find(cols, CYCLE_NAMES)
    if unit_col is None or cycle_col is None:
        raise DataError(
            f"{source} needs a unit column ({', '.join(UNIT_NAMES[:3])}) and a cycle column "
            f"({', '.join(CYCLE_NAMES[:3])}); it has {', '.join(cols[:12])}"
        )
    rul_col = _find(cols, RUL_NAMES)
    rest = [c for c in cols if c not in (unit_col, cycle_col, rul_col) and not is_label(c)]
    if setting_names is None:
        setting_names = [c for c in rest if _key(c).startswith(("setting", "opsetting", "operationalsetting"))]
    if sensor_names is None:
        sensor_names = [c for c in rest if c not in setting_names and pd.api.types.is_numeric_dtype(df[c])]
    missing = [c for c in (*setting_names, *sensor_names) if c not in cols]
    if missing:
        raise DataError(f"{source} lacks the column(s) the model was trained on: {', '.join(missing[:8])}")
    if not sensor_names:
        raise DataError(f"{source} has no numeric sensor columns")

    def numeric(names: list[str], gaps: bool = False) -> np.ndarray:
        """The columns as float64; with ``gaps`` an empty cell is NaN (filled later), else refused."""
        if not names:
            return np.zeros((len(df), 0))
        try:
            arr = df[names].to_numpy(dtype=np.float64, copy=True)
        except (ValueError, TypeError):
            bad = next(c for c in names if not pd.api.types.is_numeric_dtype(df[c]))
            raise DataError(f"{source}: column {bad!r} is not numeric") from None
        missing = ~np.isfinite(arr)
        if missing.any() and not gaps:
            r, c = np.argwhere(missing)[0]
            raise DataError(f"{source}: row {r + 1} has no finite value in column {names[c]!r}")
        if missing.all(axis=0).any():
            c = int(np.flatnonzero(missing.all(axis=0))[0])
            raise DataError(f"{source}: column {names[c]!r} has no readings")
        arr[missing] = np.nan
        return arr

    try:
        units = df[unit_col].to_numpy(dtype=np.float64)
        cycles = df[cycle_col].to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(f"{source}: the unit and cycle columns must be numbers") from None
    if not (np.isfinite(units).all() and np.isfinite(cycles).all()) or (units != np.round(units)).any():
        raise DataError(f"{source}: units must be whole numbers and cycles finite")
    order = np.lexsort((cycles, units))
    units = units[order].astype(np.int64)
    cycles = cycles[order]
    same = (np.diff(units) == 0) & (np.diff(cycles) == 0)
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise DataError(f"{source}: unit {units[i]} has cycle {cycles[i]:g} twice")
    rul = None
    if rul_col is not None:
        rul = numeric([rul_col])[order, 0]
    settings, n_settings = fill_gaps(numeric(setting_names, gaps=True)[order], units)
    sensors, n_sensors = fill_gaps(numeric(sensor_names, gaps=True)[order], units)
    return Histories(
        units, cycles, settings, sensors, list(setting_names), list(sensor_names), rul, n_settings + n_sensors
    )


def fill_gaps(values: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, int]:
    """``values`` (rows sorted by unit, then cycle) with each missing reading (NaN) taken from the same unit's last
    reading before it, or, at the start of a life, its first one after; a unit with no reading of a column at all
    gets the column's median over every unit. Returns the values and how many were filled."""
    missing = np.isnan(values)
    n = int(missing.sum())
    if not n:
        return values, 0
    frame = pd.DataFrame(values)
    by_unit = frame.groupby(units, sort=False)
    frame = by_unit.ffill().groupby(units, sort=False).bfill()
    out = frame.to_numpy(dtype=np.float64, copy=True)
    left = np.isnan(out)
    if left.any():
        medians = np.nanmedian(values, axis=0)
        out[left] = np.broadcast_to(medians, out.shape)[left]
    return out, n


def read_histories(path: str | Path, **names) -> Histories:
    return histories(read_table(path), str(path), **names)


def read_truth(path: str | Path, units: np.ndarray) -> np.ndarray:
    """True RUL per unit: C-MAPSS's ``RUL_FDxxx.txt`` (one number a line, in unit order) or a table with unit and
    rul columns. Returned in the order of ``units``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"truth file not found: {p}")
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    if "," not in text.splitlines()[0] if text.strip() else True:
        try:
            values = np.array([float(x) for x in text.split()])
        except ValueError:
            raise DataError(f"{p}: a truth file is one RUL number per line, in unit order") from None
        if len(values) != len(units):
            raise DataError(f"{p} has {len(values)} RUL values; the data has {len(units)} units")
        _check_ruls(values, p)
        ranked = np.sort(units)
        lookup = dict(zip(ranked.tolist(), values.tolist(), strict=True))
        return np.array([lookup[u] for u in units.tolist()])
    df = read_table(p)
    cols = [str(c) for c in df.columns]
    u, r = _find(cols, UNIT_NAMES), _find(cols, RUL_NAMES)
    if u is None or r is None:
        raise DataError(f"{p}: a truth table needs unit and rul columns")
    unit_ids = pd.to_numeric(df[u], errors="coerce")
    ruls = pd.to_numeric(df[r], errors="coerce").to_numpy(dtype=float)
    bad = unit_ids.isna() | (unit_ids != unit_ids.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        cell = df[u].iloc[i]
        raise DataError(f"{p} row {i + 2}: unit {'(empty)' if pd.isna(cell) else str(cell)} is not a whole number")
    if unit_ids.duplicated().any():
        raise DataError(f"{p}: unit {int(unit_ids[unit_ids.duplicated()].iloc[0])} has more than one RUL")
    _check_ruls(ruls, p)
    lookup = dict(zip(unit_ids.astype(int).tolist(), ruls.tolist(), strict=True))
    gone = [int(x) for x in units if int(x) not in lookup]
    if gone:
        raise DataError(f"{p} has no RUL for unit(s) {', '.join(map(str, gone[:8]))}")
    return np.array([lookup[int(x)] for x in units])


def _check_ruls(values: np.ndarray, p: Path) -> None:
    """True remaining lives are finite numbers of cycles, never negative: NaN or infinity would print as figures."""
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{p}: RUL value {i + 1} is {values[i]:g}, not a number of cycles >= 0")
