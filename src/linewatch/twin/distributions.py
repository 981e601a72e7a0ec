"""Times in the line model: a fixed number or a distribution, written ``6.0`` or ``{dist: exponential, mean: 60}``.

| dist | parameters | |
|---|---|---|
| fixed | value | |
| exponential | mean | |
| normal | mean, sd | truncated at 0 (redrawn) |
| lognormal | mean, cv | mean and coefficient of variation of the time itself |
| gamma | mean, cv | |
| uniform | low, high | |
| triangular | low, mode, high | |
| weibull | shape, scale | |
| empirical | values | drawn uniformly from the list |

Samplers draw from ``random.Random`` (one per replication): it is several times faster per draw than NumPy for
the scalar draws a discrete-event simulation makes, and a seed reproduces a run exactly."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "exponential": ("mean",),
    "normal": ("mean", "sd"),
    "lognormal": ("mean", "cv"),
    "gamma": ("mean", "cv"),
    "uniform": ("low", "high"),
    "triangular": ("low", "mode", "high"),
    "weibull": ("shape", "scale"),
    "empirical": ("values",),
}


class Dist(BaseModel):
    """A non-negative time. Accepts a number (fixed) or a mapping with ``dist`` and its parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dist: str
    value: float | None = None
    mean: float | None = None
    sd: float | None = None
    cv: float | None = None
    low: float | None = None
    high: float | None = None
    mode: float | None = None
    shape: float | None = None
    scale: float | None = None
    values: tuple[float, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("expected a number of seconds or a distribution like {dist: exponential, mean: 60}")
        if isinstance(v, int | float):
            return {"dist": "fixed", "value": v}
        if isinstance(v, dict):
            kind = v.get("dist")
            if kind not in PARAMS:
                raise ValueError(f"dist must be one of {', '.join(PARAMS)} (got {kind!r})")
            extra = set(v) - {"dist", *PARAMS[kind]}
            if extra:
                raise ValueError(f"{kind} takes {', '.join(PARAMS[kind])}, not {', '.join(sorted(extra))}")
            lacking = [p for p in PARAMS[kind] if v.get(p) is None]
            if lacking:
                raise ValueError(f"{kind} needs {', '.join(lacking)}")
            return v
        if isinstance(v, Dist):
            return v
        raise ValueError("expected a number of seconds or a distribution like {dist: exponential, mean: 60}")

    @model_validator(mode="after")
    def _check(self) -> Dist:
        k = self.dist
        bad = None
        if k == "fixed" and not self.value >= 0:
            bad = "must be >= 0"
        elif k in ("exponential", "normal", "lognormal", "gamma") and not self.mean > 0:
            bad = "mean must be > 0"
        elif k == "normal" and not self.sd >= 0:
            bad = "sd must be >= 0"
        elif k in ("lognormal", "gamma") and not self.cv > 0:
            bad = "cv must be > 0"
        elif k == "uniform" and not 0 <= self.low <= self.high:
            bad = "needs 0 <= low <= high"
        elif k == "triangular" and not 0 <= self.low <= self.mode <= self.high:
            bad = "needs 0 <= low <= mode <= high"
        elif k == "weibull" and not (self.shape > 0 and self.scale > 0):
            bad = "shape and scale must be > 0"
        elif k == "empirical" and (not self.values or min(self.values) < 0):
            bad = "values must be a non-empty list of times >= 0"
        if bad is None and not all(math.isfinite(x) for x in self._numbers()):
            bad = "parameters must be finite"
        if bad:
            raise ValueError(bad)
        return self

    def _numbers(self) -> list[float]:
        out = [getattr(self, p) for p in PARAMS[self.dist] if p != "values"]
        return out + list(self.values or ())

    # -- what the simulation and OEE need --------------------------------------------------------------------------
    @property
    def mean_value(self) -> float:
        k = self.dist
        if k == "fixed":
            return self.value
        if k in ("exponential", "normal", "lognormal", "gamma"):
            return self.mean  # normal: before truncation (a small sd relative to the mean is assumed)
        if k == "uniform":
            return (self.low + self.high) / 2
        if k == "triangular":
            return (self.low + self.mode + self.high) / 3
        if k == "weibull":
            return self.scale * math.gamma(1 + 1 / self.shape)
        return sum(self.values) / len(self.values)

    def scaled(self, factor: float) -> Dist:
        """The same shape with every time multiplied by ``factor`` (units: hours to seconds, faster machines)."""
        keys = ("value", "mean", "sd", "low", "high", "mode", "scale")
        upd = {p: getattr(self, p) * factor for p in keys if getattr(self, p) is not None}
        if self.values is not None:
            upd["values"] = tuple(x * factor for x in self.values)
        return self.model_copy(update=upd)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A function of no arguments returning one draw (fast: bound methods, no dispatch per draw)."""
        k = self.dist
        if k == "fixed":
            v = self.value
            return lambda: v
        if k == "exponential":
            lam = 1.0 / self.mean
            return lambda: rng.expovariate(lam)
        if k == "normal":
            mu, sd, g = self.mean, self.sd, rng.gauss

            def normal() -> float:
                while True:
                    x = g(mu, sd)
                    if x >= 0:
                        return x

            return normal
        if k == "lognormal":
            s2 = math.log(1 + self.cv**2)
            mu, s = math.log(self.mean) - s2 / 2, math.sqrt(s2)
            return lambda: rng.lognormvariate(mu, s)
        if k == "gamma":
            alpha = 1 / self.cv**2
            beta = self.mean / alpha
            return lambda: rng.gammavariate(alpha, beta)
        if k == "uniform":
            lo, hi = self.low, self.high
            return lambda: rng.uniform(lo, hi)
        if k == "triangular":
            lo, mo, hi = self.low, self.mode, self.high
            return lambda: rng.triangular(lo, hi, mo)
        if k == "weibull":
            sc, sh = self.scale, self.shape
            return lambda: rng.weibullvariate(sc, sh)
        vals = self.values
        return lambda: rng.choice(vals)

    def describe(self) -> str:
        if self.dist == "fixed":
            return f"{self.value:g}"
        if self.dist == "empirical":
            return f"empirical({len(self.values)} values)"
        return f"{self.dist}(" + ", ".join(f"{p}={getattr(self, p):g}" for p in PARAMS[self.dist]) + ")"

    def to_json(self) -> float | dict:
        if self.dist == "fixed":
            return self.value
        d = {"dist": self.dist, **{p: getattr(self, p) for p in PARAMS[self.dist]}}
        if "values" in d:
            d["values"] = list(d["values"])
        return d
