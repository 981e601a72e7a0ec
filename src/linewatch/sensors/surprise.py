"""A streaming detector that learns what each series usually looks like and scores how surprising every new point
is, for many univariate series at once (every series is a column, every ``update`` one time step). It is the
sensor engine's answer to NAB (docs/benchmarks.md): causal (a score uses only the points up to its own), bounded
memory per series, one parameter set for every series.

Per point and series, four raw scores in [0, 1], each a different way of being unusual:

1. *New pattern.* The last ``window`` points, scaled to the range seen so far and each cut to a level in steps
   of ``radius`` of the range, form a cell; a table of ``2**pattern_bits`` bits per series remembers the cells
   seen (hashed: a rare collision reads as seen). A cell never seen before scores 1. Periodic series learn their
   cycle; a cycle that breaks shows as new cells.
2. *Rare level.* The share of all earlier points within ``density_band`` x the range of this one, from a histogram
   whose bins double when the range grows. Below ``rare_share`` it scores up to 1: a level the series seldom visits
   (a flat stretch at a new height, a day at the wrong level) stands out even when its windows repeat.
3. *Rare smoothed level.* The same for the mean of the last ``smooth`` points, so a sustained shift of noisy
   values counts before single points do.
4. *Deviation.* ``|x - mean| / std`` against an exponentially weighted mean and variance (weight ``alpha``),
   divided by 4 and capped at 1.

Each raw score goes through HTM's anomaly likelihood (Ahmad et al. 2017): its average over the last
``likelihood_window`` points is compared with the long-term mean and variance of that average (memory
``likelihood_memory`` points; floors of 0.06 on the mean and 0.0003 on the variance, HTM's are 0.03 and 0.0003):
the tail probability, as a surprise in decades (``-log10 P``), weighted per raw score; the largest is the point's
surprise. A point outside the range seen so far by more than ``range_tolerance`` x the range is a full surprise
(HTM's spatial check).
Only the first point of an alarm counts in full: a surprise above 5 decades within ``rearm`` points of the
previous one is lowered to 3 (HTM's red/yellow filter, widened), so one event raises one alert.

The score is the surprise divided by 10 (capped at 1); an alert is a score at or above ``threshold`` after the
series' learning period (its first ``learning_period`` points: the likelihood starts after half of it).
Missing points (NaN) leave a series' state untouched and score 0. ``state()`` / ``save`` / ``load`` checkpoint
the detector as plain arrays and JSON, so a restart continues exactly where it stopped. State per series with
the defaults: about 17 KB (the 8 KB pattern table, two 512-bin histograms, the likelihood windows).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy.special import log_ndtr

from linewatch.core.estimator import Estimator
from linewatch.core.modelfiles import write_json_atomic
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.methods import SurpriseParams

STATE_VERSION = 1
SCALAR_SERIES = 8  # up to this many series, update_many runs a plain-float loop per series
BINS = 512  # histogram bins per level histogram
CHANNELS = 4  # new pattern, rare level, rare smoothed level, deviation
RED, YELLOW, FULL = 5.0, 3.0, 10.0  # surprise (decades): an alarm, what a repeated alarm is lowered to, the cap
MEAN_FLOOR, VAR_FLOOR = 0.06, 0.0003
_LN10 = math.log(10.0)
_GOLDEN = 0x9E3779B97F4A7C15  # Fibonacci hashing: the top bits of key x this spread the cells over the table

# name -> (shape after the series axis, as a function of the parameters; initial value[; dtype, else float])
_STATE = {
    "count": ((), 0.0),
    "learning": ((), 0.0),  # each series' learning period (start() may give one per series)
    "lo": ((), np.inf),
    "hi": ((), -np.inf),
    "buf": (("window",), 0.0),
    "patterns": (("pattern_bytes",), 0, np.uint8),  # a bit per cell hash: seen or not
    "n_patterns": ((), 0.0),
    "hist": ((2, BINS), 0.0),  # level and smoothed level histograms
    "h_base": ((2,), 0.0),
    "h_width": ((2,), 0.0),  # 0: not laid out yet (the values so far were all equal)
    "h_first": ((2,), 0.0),
    "h_pending": ((2,), 0.0),
    "s_lo": ((), np.inf),
    "s_hi": ((), -np.inf),
    "mean": ((), 0.0),
    "var": ((), 0.0),
    "ring": ((CHANNELS, "likelihood_window"), 0.0),
    "rsum": ((CHANNELS,), 0.0),
    "lmean": ((CHANNELS,), 0.0),
    "lvar": ((CHANNELS,), 0.0),
    "since_red": ((), np.inf),  # points since the last alarm-level surprise
    "alerts": ((), 0.0),
}


def _shape(spec: tuple, p: dict) -> tuple[int, ...]:
    sizes = {**p, "pattern_bytes": 2 ** p["pattern_bits"] // 8}
    return tuple(sizes[s] if isinstance(s, str) else s for s in spec)


class SurpriseDetector(Estimator):
    """``SurpriseDetector().start(n_series)`` then ``update(x)`` per time step (or ``update_many`` per block)."""

    engine = "sensors"
    method = "surprise"
    Params = SurpriseParams

    def start(
        self, n_series: int, names: list[str] | None = None, learning_periods: list[int] | None = None
    ) -> SurpriseDetector:
        """Fresh state for ``n_series`` series; ``learning_periods`` gives each series its own (default: the
        ``learning_period`` parameter), e.g. a share of a recording's length."""
        if n_series < 1:
            raise LinewatchError("a streaming detector needs at least one series")
        if names is not None and len(names) != n_series:
            raise LinewatchError(f"{len(names)} names for {n_series} series")
        p = self.params_ = self._validate_params()
        self._mix = np.array([(2 * i + 1) * 0x2545F4914F6CDD1D % 2**64 for i in range(64)], dtype=np.uint64)
        self.names_ = list(names) if names is not None else [f"s{i}" for i in range(n_series)]
        for k, (spec, init, *dtype) in _STATE.items():
            setattr(self, f"{k}_", np.full((n_series, *_shape(spec, p)), init, dtype=dtype[0] if dtype else float))
        if learning_periods is not None:
            lp = np.asarray(learning_periods, dtype=float).reshape(-1)
            if lp.shape != (n_series,) or not np.all(lp >= 2):
                raise LinewatchError(f"learning_periods: one value of at least 2 per series ({n_series})")
            self.learning_[:] = lp
        else:
            self.learning_[:] = p["learning_period"]
        return self

    @property
    def n_series(self) -> int:
        self._check_fitted()
        return len(self.count_)

    # -- the histogram of levels ---------------------------------------------------------------------------

    def _level_share(self, h: int, x: np.ndarray, ok: np.ndarray, band: np.ndarray) -> np.ndarray:
        """Per series (where ``ok``): the count of earlier values of histogram ``h`` within ``band`` of ``x``."""
        base, width = self.h_base_[:, h], self.h_width_[:, h]
        out = np.zeros(len(x))
        laid = ok & (width > 0)
        flat = ok & (width == 0)
        out[flat] = np.where(np.abs(x[flat] - self.h_first_[flat, h]) <= band[flat], self.h_pending_[flat, h], 0.0)
        if laid.any():
            rows = np.flatnonzero(laid)
            w = width[rows]
            i0 = np.floor((x[rows] - band[rows] - base[rows]) / w)
            i1 = np.floor((x[rows] + band[rows] - base[rows]) / w)
            i0, i1 = np.clip(i0, 0, BINS - 1).astype(int), np.clip(i1, -1, BINS - 1).astype(int)
            i1 = np.where(x[rows] - band[rows] >= base[rows] + BINS * w, -1, i1)
            span = int(max((i1 - i0).max() + 1, 1))
            idx = i0[:, None] + np.arange(span)
            flat = ((rows * 2 + h) * BINS)[:, None] + np.minimum(idx, BINS - 1)
            take = self.hist_.reshape(-1).take(flat)
            out[rows] = np.where(idx <= i1[:, None], take, 0.0).sum(axis=1)
        return out

    def _level_insert(self, h: int, x: np.ndarray, ok: np.ndarray) -> None:
        width = self.h_width_[:, h]
        new = ok & (self.count_ == 1)
        self.h_first_[new, h] = x[new]
        flat = ok & (width == 0)
        same = flat & (x == self.h_first_[:, h])
        self.h_pending_[same, h] += 1
        lay = flat & ~same
        for i in np.flatnonzero(lay):  # the first value that differs: lay the bins out around the two
            first, xi = self.h_first_[i, h], x[i]
            w = abs(xi - first) / (BINS / 4)
            self.h_width_[i, h] = w
            self.h_base_[i, h] = (xi + first) / 2 - (BINS / 2) * w
            j = min(max(int((first - self.h_base_[i, h]) // w), 0), BINS - 1)
            self.hist_[i, h, j] += self.h_pending_[i, h]
            self.h_pending_[i, h] = 0.0
        rows = np.flatnonzero(ok & (self.h_width_[:, h] > 0))
        if not len(rows):
            return
        idx = np.floor((x[rows] - self.h_base_[rows, h]) / self.h_width_[rows, h])
        for k in np.flatnonzero((idx < 0) | (idx >= BINS)):  # outside the bins: double their width until it fits
            i = rows[k]
            while True:
                b, w = self.h_base_[i, h], self.h_width_[i, h]
                j = math.floor((x[i] - b) / w)
                if 0 <= j < BINS:
                    idx[k] = j
                    break
                merged = self.hist_[i, h].reshape(BINS // 2, 2).sum(axis=1)
                self.hist_[i, h] = 0.0
                if j >= BINS:
                    self.hist_[i, h, : BINS // 2] = merged
                else:
                    self.hist_[i, h, BINS // 2 :] = merged
                    self.h_base_[i, h] = b - BINS * w
                self.h_width_[i, h] = 2 * w
        self.hist_[rows, h, idx.astype(int)] += 1.0

    # -- one time step ---------------------------------------------------------------------------------------

    def update(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step: ``x`` holds one value per series (NaN: no reading). Returns each series' score in [0, 1]
        (surprise / 10) and whether it alerts. Mutates the state: this is learning, not scoring."""
        self._check_fitted()
        x = np.asarray(x, dtype=float).reshape(-1)
        n = len(self.count_)
        if x.shape[0] != n:
            raise LinewatchError(f"expected {n} values (one per series), got {x.shape[0]}")
        p = self.params_
        seen = np.isfinite(x)
        xs = np.where(seen, x, 0.0)
        self.count_ += seen
        count = self.count_

        # the range so far, and HTM's spatial check against it (before this point widens it)
        rng = self.hi_ - self.lo_
        tol = p["range_tolerance"] * rng
        with np.errstate(invalid="ignore"):
            spatial = seen & (count > 1) & (rng > 0) & ((xs > self.hi_ + tol) | (xs < self.lo_ - tol))
        self.lo_ = np.where(seen, np.minimum(self.lo_, xs), self.lo_)
        self.hi_ = np.where(seen, np.maximum(self.hi_, xs), self.hi_)
        rng = self.hi_ - self.lo_
        raw = np.zeros((n, CHANNELS))

        # 1. new pattern: the window's cell (each point's level in steps of `radius`) never seen before
        w = p["window"]
        self.buf_[seen, :-1] = self.buf_[seen, 1:]
        self.buf_[seen, -1] = xs[seen]
        ready = seen & (count >= w) & (rng > 0)
        if ready.any():
            rows = np.flatnonzero(ready)
            v = (self.buf_[rows] - self.lo_[rows, None]) / rng[rows, None]
            cells = np.floor(v / p["radius"]).astype(np.uint64)
            key = (cells * self._mix[:w]).sum(axis=1, dtype=np.uint64) * np.uint64(_GOLDEN)
            slot = (key >> np.uint64(64 - p["pattern_bits"])).astype(np.int64)
            byte, bit = slot >> 3, (slot & 7).astype(np.uint8)
            table = self.patterns_[rows, byte]
            novel = (table >> bit) & 1 == 0
            raw[rows, 0] = novel
            self.patterns_[rows[novel], byte[novel]] = table[novel] | (np.uint8(1) << bit[novel])
            self.n_patterns_[rows[novel]] += 1

        # 2. rare level, 3. rare smoothed level
        k = min(p["smooth"], w)
        have = np.minimum(count, k)
        total = self.buf_[:, w - k]
        for c in range(w - k + 1, w):  # summed in this order in both paths (the plain-float loop's too)
            total = total + self.buf_[:, c]
        smooth = np.where(seen, total / np.maximum(have, 1), 0.0)
        # (the window's older slots are 0 until filled: the sum over `have` points is the sum of the last k slots)
        self.s_lo_ = np.where(seen, np.minimum(self.s_lo_, smooth), self.s_lo_)
        self.s_hi_ = np.where(seen, np.maximum(self.s_hi_, smooth), self.s_hi_)
        for h, (val, r) in enumerate(((xs, rng), (smooth, self.s_hi_ - self.s_lo_))):
            ok = seen & (count > 10) & (r > 0)
            near = self._level_share(h, val, ok, p["density_band"] * r)
            prev = np.maximum(count - 1, 1)
            raw[:, 1 + h] = np.where(ok, np.maximum(0.0, 1.0 - near / (p["rare_share"] * prev)), 0.0)
            self._level_insert(h, val, seen)

        # 4. deviation from the running mean
        sd = np.sqrt(self.var_)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(seen & (sd > 0), np.abs(xs - self.mean_) / np.where(sd > 0, sd, 1.0), 0.0)
        raw[:, 3] = np.minimum(z / 4.0, 1.0)
        a = np.where(seen, np.maximum(1.0 / np.maximum(count, 1), p["alpha"]), 0.0)
        delta = np.where(seen, xs - self.mean_, 0.0)
        self.mean_ = self.mean_ + a * delta
        self.var_ = (1 - a) * (self.var_ + a * delta * delta)

        # anomaly likelihood per raw score
        avg = p["likelihood_window"]
        slot = ((count - 1) % avg).astype(int)
        rows = np.flatnonzero(seen)
        self.rsum_[rows] = self.rsum_[rows] + (raw[rows] - self.ring_[rows, :, slot[rows]])
        self.ring_[rows, :, slot[rows]] = raw[rows]
        m = self.rsum_ / np.minimum(np.maximum(count, 1), avg)[:, None]
        mu = np.maximum(self.lmean_, MEAN_FLOOR)
        sdl = np.sqrt(np.maximum(self.lvar_, VAR_FLOOR))
        tail = log_ndtr(-(m - mu) / sdl) / -_LN10
        active = seen & (count - 1 >= self.learning_ * 0.5)
        surprise = np.where(active[:, None] & (m > mu), tail, 0.0)
        la = np.where(seen, np.maximum(1.0 / np.maximum(count, 1), 1.0 / p["likelihood_memory"]), 0.0)[:, None]
        ld = m - self.lmean_
        self.lmean_ = self.lmean_ + la * ld
        self.lvar_ = (1 - la) * (self.lvar_ + la * ld * ld)
        weights = np.array([1.0, p["level_weight"], p["level_weight"], p["deviation_weight"]])
        s = (surprise * weights).max(axis=1)

        # one alarm per event, the spatial check, the score
        red = seen & (s > RED)
        self.since_red_ = np.where(seen, self.since_red_ + 1, self.since_red_)
        s = np.where(red & (self.since_red_ <= max(p["rearm"], 1)), YELLOW, s)
        self.since_red_ = np.where(red, 0.0, self.since_red_)
        learnt = count > self.learning_
        s = np.where(spatial & learnt, FULL, s)
        score = np.where(seen, np.minimum(s, FULL) / FULL, 0.0)
        alert = seen & learnt & (score >= p["threshold"])
        self.alerts_ += alert
        return score, alert

    def update_many(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Several time steps: ``block`` is (steps, series); returns scores and alerts of the same shape."""
        self._check_fitted()
        block = np.asarray(block, dtype=float)
        if block.ndim == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != len(self.count_):
            raise LinewatchError(f"expected (steps, {len(self.count_)}) values, got shape {block.shape}")
        scores, alerts = np.empty_like(block), np.zeros(block.shape, dtype=bool)
        if block.shape[1] <= SCALAR_SERIES:
            for j in range(block.shape[1]):
                scores[:, j], alerts[:, j] = self._run_series(j, block[:, j])
            return scores, alerts
        for i, row in enumerate(block):
            scores[i], alerts[i] = self.update(row)
        return scores, alerts

    def _run_series(self, j: int, values: np.ndarray) -> tuple[list[float], list[bool]]:
        """The recurrences of :meth:`update` for series ``j`` over many points, in plain Python floats, operation
        for operation (the same results, bit for bit: tests/sensors/test_sensor_surprise.py)."""
        p = self.params_
        w, k, radius, bits = p["window"], min(p["smooth"], p["window"]), p["radius"], p["pattern_bits"]
        band_share, rare, alpha, avg = p["density_band"], p["rare_share"], p["alpha"], p["likelihood_window"]
        memory, tolerance, rearm, threshold = p["likelihood_memory"], p["range_tolerance"], p["rearm"], p["threshold"]
        weights = (1.0, p["level_weight"], p["level_weight"], p["deviation_weight"])
        mix = [int(m) for m in self._mix[:w]]
        mask64, shift = 2**64 - 1, 64 - bits
        count, learning = float(self.count_[j]), float(self.learning_[j])
        lo, hi = float(self.lo_[j]), float(self.hi_[j])
        buf = self.buf_[j].tolist()
        table = bytearray(self.patterns_[j].tobytes())
        n_patterns = float(self.n_patterns_[j])
        hist = [self.hist_[j, h].tolist() for h in range(2)]
        base, width = self.h_base_[j].tolist(), self.h_width_[j].tolist()
        first, pending = self.h_first_[j].tolist(), self.h_pending_[j].tolist()
        s_lo, s_hi, mean, var = float(self.s_lo_[j]), float(self.s_hi_[j]), float(self.mean_[j]), float(self.var_[j])
        ring = self.ring_[j].tolist()
        rsum, lmean, lvar = self.rsum_[j].tolist(), self.lmean_[j].tolist(), self.lvar_[j].tolist()
        since_red, n_alerts = float(self.since_red_[j]), float(self.alerts_[j])
        sqrt, floor, isfinite = math.sqrt, math.floor, math.isfinite
        scores, alerts = [], []
        raw = [0.0] * CHANNELS
        for x in values.tolist():
            if not isfinite(x):
                scores.append(0.0)
                alerts.append(False)
                continue
            count += 1.0
            rng = hi - lo
            tol = tolerance * rng
            spatial = count > 1 and rng > 0 and (x > hi + tol or x < lo - tol)
            lo, hi = min(lo, x), max(hi, x)
            rng = hi - lo
            raw[0] = 0.0
            buf.pop(0)
            buf.append(x)
            if count >= w and rng > 0:
                key = 0
                for i in range(w):
                    key += int(floor((buf[i] - lo) / rng / radius)) * mix[i]
                slot = (((key & mask64) * _GOLDEN) & mask64) >> shift
                byte, bit = slot >> 3, slot & 7
                if not (table[byte] >> bit) & 1:
                    raw[0] = 1.0
                    table[byte] |= 1 << bit
                    n_patterns += 1.0
            total = buf[w - k]
            for c in range(w - k + 1, w):
                total = total + buf[c]
            smooth = total / max(min(count, k), 1.0)
            s_lo, s_hi = min(s_lo, smooth), max(s_hi, smooth)
            for h, (val, r) in enumerate(((x, rng), (smooth, s_hi - s_lo))):
                hh, bw = hist[h], width[h]
                raw[1 + h] = 0.0
                if count > 10 and r > 0:
                    band = band_share * r
                    if bw == 0:
                        near = pending[h] if abs(val - first[h]) <= band else 0.0
                    else:
                        b0 = base[h]
                        i0 = min(max(floor((val - band - b0) / bw), 0), BINS - 1)
                        i1 = min(max(floor((val + band - b0) / bw), -1), BINS - 1)
                        if val - band >= b0 + BINS * bw:
                            i1 = -1
                        near = sum(hh[i0 : i1 + 1]) if i1 >= i0 else 0.0  # whole counts: exact in any order
                    raw[1 + h] = max(0.0, 1.0 - near / (rare * max(count - 1, 1)))
                # insert
                if count == 1:
                    first[h] = val
                if bw == 0:
                    if val == first[h]:
                        pending[h] += 1
                        continue
                    bw = width[h] = abs(val - first[h]) / (BINS / 4)
                    base[h] = (val + first[h]) / 2 - (BINS / 2) * bw
                    i = min(max(int((first[h] - base[h]) // bw), 0), BINS - 1)
                    hh[i] += pending[h]
                    pending[h] = 0.0
                while True:
                    i = floor((val - base[h]) / width[h])
                    if 0 <= i < BINS:
                        break
                    merged = [hh[2 * q] + hh[2 * q + 1] for q in range(BINS // 2)]
                    zeros = [0.0] * (BINS // 2)
                    if i >= BINS:
                        hh[:] = merged + zeros
                    else:
                        hh[:] = zeros + merged
                        base[h] = base[h] - BINS * width[h]
                    width[h] = 2 * width[h]
                hh[i] += 1.0
            sd = sqrt(var)
            z = abs(x - mean) / sd if sd > 0 else 0.0
            raw[3] = min(z / 4.0, 1.0)
            a = max(1.0 / max(count, 1.0), alpha)
            delta = x - mean
            mean = mean + a * delta
            var = (1 - a) * (var + a * delta * delta)
            slot = int((count - 1) % avg)
            active = count - 1 >= learning * 0.5
            la = max(1.0 / max(count, 1.0), 1.0 / memory)
            s = 0.0
            for c in range(CHANNELS):
                rc = ring[c]
                rsum[c] = rsum[c] + (raw[c] - rc[slot])
                rc[slot] = raw[c]
                m = rsum[c] / min(max(count, 1.0), avg)
                mu = max(lmean[c], MEAN_FLOOR)
                if active and m > mu:
                    sdl = sqrt(max(lvar[c], VAR_FLOOR))
                    s = max(s, float(log_ndtr(-(m - mu) / sdl) / -_LN10) * weights[c])
                ld = m - lmean[c]
                lmean[c] = lmean[c] + la * ld
                lvar[c] = (1 - la) * (lvar[c] + la * ld * ld)
            since_red += 1.0
            if s > RED:
                if since_red <= max(rearm, 1):
                    s = YELLOW
                since_red = 0.0
            learnt = count > learning
            if spatial and learnt:
                s = FULL
            score = min(s, FULL) / FULL
            alert = learnt and score >= threshold
            n_alerts += alert
            scores.append(score)
            alerts.append(alert)
        self.count_[j], self.lo_[j], self.hi_[j], self.n_patterns_[j] = count, lo, hi, n_patterns
        self.buf_[j] = buf
        self.patterns_[j] = np.frombuffer(bytes(table), dtype=np.uint8)
        self.hist_[j] = hist
        self.h_base_[j], self.h_width_[j], self.h_first_[j], self.h_pending_[j] = base, width, first, pending
        self.s_lo_[j], self.s_hi_[j], self.mean_[j], self.var_[j] = s_lo, s_hi, mean, var
        self.ring_[j], self.rsum_[j], self.lmean_[j], self.lvar_[j] = ring, rsum, lmean, lvar
        self.since_red_[j], self.alerts_[j] = since_red, n_alerts
        return scores, alerts

    # -- checkpoints -----------------------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {k: getattr(self, f"{k}_").copy() for k in _STATE}

    def state_bytes(self) -> int:
        """Memory of one series' state."""
        return sum(v.nbytes for v in self.state().values()) // max(self.n_series, 1)

    def save(self, path: Path) -> Path:
        """Checkpoint to a directory: ``state.json`` (parameters, series names) and ``state.npz`` (plain arrays)."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / ".state.tmp.npz"
        np.savez(tmp, **self.state())
        tmp.replace(path / "state.npz")
        meta = {"engine": "sensors", "kind": self.method, "format_version": STATE_VERSION}
        write_json_atomic(path / "state.json", {**meta, "params": self.config(), "names": self.names_})
        return path

    @classmethod
    def load(cls, path: Path) -> SurpriseDetector:
        path = Path(path)
        try:
            meta = json.loads((path / "state.json").read_text())
            arrays = np.load(path / "state.npz", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ModelFileError(f"{path} is not a streaming checkpoint ({e})") from None
        if meta.get("format_version", 0) > STATE_VERSION:
            version = meta["format_version"]
            raise ModelFileError(f"{path} was written by a newer linewatch (checkpoint format {version}): upgrade")
        if meta.get("kind") != cls.method:
            raise ModelFileError(f"{path} is a {meta.get('kind')!r} checkpoint, not {cls.method!r}")
        det = cls(**meta["params"]).start(len(meta["names"]), meta["names"])
        for k in _STATE:
            want, want_dtype = getattr(det, f"{k}_").shape, getattr(det, f"{k}_").dtype
            if k not in arrays or arrays[k].shape != want:
                raise ModelFileError(f"{path}: the checkpoint's {k} array is missing or has the wrong shape")
            setattr(det, f"{k}_", arrays[k].astype(want_dtype))
        return det
