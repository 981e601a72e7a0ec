"""Replications, confidence intervals and what-if scenarios.

Replication ``i`` of a run with seed ``N`` has its own seed, derived from ``(N, i)`` by NumPy's ``SeedSequence``
(independent streams), so any replication can be rerun alone and gives the same numbers, whatever the number of
replications or workers. Replications run in parallel processes (``concurrent.futures``, spawn) when ``workers > 1``.
Scenarios are run with the same seeds as the base (common random numbers), which makes their differences sharper."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from linewatch.twin.model import Line, Scenario, apply_scenario, line_from_dict

# the figures summarised across replications (per machine and per buffer ones are added by name)
SCALARS = ("throughput_per_h", "lead_time_s", "wip", "output_oee", "oee", "good", "scrap", "reworked")
MACHINE = ("utilisation", "blocked", "starved", "down", "oee", "availability", "performance", "quality")


def replication_seeds(seed: int, n: int) -> list[int]:
    import numpy as np

    return [int(s.generate_state(1, dtype=np.uint64)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def t_quantile(n: int, level: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


@dataclass
class Stat:
    mean: float
    sd: float
    half_width: float  # of the confidence interval
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "sd": self.sd, "ci_low": self.low, "ci_high": self.high, "n": self.n}

    def text(self, digits: int = 3) -> str:
        if math.isnan(self.mean):
            return "—"
        if self.n < 2:
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} ± {self.half_width:.2g}"


def stat(values: list[float], level: float = 0.95) -> Stat:
    xs = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not xs:
        return Stat(math.nan, math.nan, math.nan, 0)
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return Stat(m, math.nan, math.nan, len(xs))
    sd = statistics.stdev(xs)
    return Stat(m, sd, t_quantile(len(xs), level) * sd / math.sqrt(len(xs)), len(xs))


def flatten(result: dict[str, Any]) -> dict[str, float]:
    """The figures of one replication under flat names: ``throughput_per_h``, ``machines.filler.utilisation``,
    ``buffers.infeed.mean``."""
    out = {k: result.get(k) for k in SCALARS}
    for name, m in result["machines"].items():
        for k in MACHINE:
            out[f"machines.{name}.{k}"] = m.get(k)
    for name, b in result["buffers"].items():
        out[f"buffers.{name}.mean"] = b["mean"]
    return out


@dataclass
class Summary:
    name: str
    hours: float
    seeds: list[int]
    results: list[dict[str, Any]]
    stats: dict[str, Stat] = field(default_factory=dict)
    bottleneck: dict[str, float] = field(default_factory=dict)  # machine -> share of replications

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "hours": self.hours,
            "replications": len(self.results),
            "seeds": self.seeds,
            "bottleneck": self.bottleneck,
            "stats": {k: v.to_json() for k, v in self.stats.items()},
        }


def summarise(name: str, hours: float, seeds: list[int], results: list[dict[str, Any]], level: float = 0.95):
    flat = [flatten(r) for r in results]
    keys = list(flat[0]) if flat else []
    s = Summary(name, hours, seeds, results)
    s.stats = {k: stat([f.get(k) for f in flat], level) for k in keys}
    votes = Counter(r["bottleneck"] for r in results)
    s.bottleneck = {k: v / len(results) for k, v in votes.most_common()}
    return s


def _one(args: tuple) -> dict[str, Any]:
    line_doc, hours, seed, kw = args
    from linewatch.twin.sim import Simulation

    line = line_doc if isinstance(line_doc, Line) else line_from_dict(line_doc)
    return Simulation(line, hours, seed=seed, **kw).run()


def run_replications(
    line: Line,
    hours: float,
    replications: int = 10,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    name: str = "base",
    level: float = 0.95,
    **kw: Any,
) -> Summary:
    """``replications`` independent runs of ``hours`` (options of :class:`linewatch.twin.sim.Simulation` in ``kw``:
    ``warmup_h``, ``initial``, ``start``, ``record``), summarised with confidence intervals at ``level``."""
    if replications < 1:
        raise ValueError("replications must be >= 1")
    seeds = replication_seeds(seed, replications)
    results: list[dict[str, Any] | None] = [None] * replications
    if workers <= 1 or replications == 1:
        for i, s in enumerate(seeds):
            results[i] = _one((line, hours, s, kw))
            if progress is not None:
                progress(i + 1, replications)
    else:
        import multiprocessing

        doc = line.to_json()
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_one, (doc, hours, s, kw)): i for i, s in enumerate(seeds)}
            for done, f in enumerate(as_completed(futures), 1):
                results[futures[f]] = f.result()
                if progress is not None:
                    progress(done, replications)
    return summarise(name, hours, seeds, results, level)


def compare(
    line: Line,
    scenarios: list[Scenario],
    hours: float,
    replications: int = 10,
    seed: int = 0,
    workers: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    **kw: Any,
) -> list[Summary]:
    """The base line and each scenario, with the same seeds; the first summary is the base."""
    lines = [("base", line)] + [(s.name, apply_scenario(line, s)) for s in scenarios]
    out = []
    for name, ln in lines:
        cb = None if progress is None else (lambda d, t, _n=name: progress(_n, d, t))
        out.append(run_replications(ln, hours, replications, seed, workers, cb, name=name, **kw))
    return out
