"""The simulation against queueing theory: an M/M/1 station, a Jackson tandem line, and a saturated two-machine
line with a finite buffer (blocking after service). Each figure must lie in its replications' 95% confidence interval;
Little's law (WIP = throughput × lead time) must hold within a replication."""

from __future__ import annotations

import pytest

from linewatch.twin.experiments import run_replications
from linewatch.twin.model import line_from_dict


def exp(mean):
    return {"dist": "exponential", "mean": mean}


def check(stat, theory, name):
    assert stat.contains(theory), f"{name}: theory {theory:.4g} outside {stat.low:.4g} .. {stat.high:.4g}"


def test_mm1():
    lam, mu = 1 / 75, 1 / 60  # rho 0.8
    line = line_from_dict(
        {
            "name": "mm1",
            "arrivals": {"interarrival_s": exp(75)},
            "machines": [{"name": "server", "operation": "serve", "cycle_time_s": exp(60)}],
            "buffers": [{"name": "queue", "before": "serve", "capacity": None}],
        }
    )
    s = run_replications(line, hours=200, replications=12, seed=7, warmup_h=10, record=False)
    rho = lam / mu
    check(s.stats["machines.server.utilisation"], rho, "utilisation")
    check(s.stats["buffers.queue.mean"], rho**2 / (1 - rho), "mean queue")
    check(s.stats["wip"], rho / (1 - rho), "mean number in system")
    check(s.stats["throughput_per_h"], lam * 3600, "throughput")
    check(s.stats["lead_time_s"], 1 / (mu - lam), "time in system")
    for r in s.results:  # Little's law, per replication (edge effects of a finite run only)
        assert r["wip"] == pytest.approx(r["throughput_per_h"] / 3600 * r["lead_time_s"], rel=0.03)


def test_tandem_jackson():
    lam, mu1, mu2 = 1 / 60, 1 / 40, 1 / 45
    line = line_from_dict(
        {
            "name": "tandem",
            "arrivals": {"interarrival_s": exp(60)},
            "machines": [
                {"name": "m1", "operation": "a", "cycle_time_s": exp(40)},
                {"name": "m2", "operation": "b", "cycle_time_s": exp(45)},
            ],
            "buffers": [
                {"name": "q1", "before": "a", "capacity": None},
                {"name": "q2", "before": "b", "capacity": None},
            ],
        }
    )
    s = run_replications(line, hours=150, replications=12, seed=11, warmup_h=10, record=False)
    for m, q, mu in (("m1", "q1", mu1), ("m2", "q2", mu2)):
        rho = lam / mu
        check(s.stats[f"machines.{m}.utilisation"], rho, f"{m} utilisation")
        check(s.stats[f"buffers.{q}.mean"], rho**2 / (1 - rho), f"{q} mean queue")
        assert s.stats[f"machines.{m}.blocked"].mean == 0
    check(s.stats["throughput_per_h"], lam * 3600, "throughput")
    check(s.stats["lead_time_s"], 1 / (mu1 - lam) + 1 / (mu2 - lam), "time in system")
    for r in s.results:
        assert r["wip"] == pytest.approx(r["throughput_per_h"] / 3600 * r["lead_time_s"], rel=0.03)


@pytest.mark.parametrize("k", [1, 3])
def test_two_machines_finite_buffer(k):
    """Saturated, both exponential with rate mu, a buffer of k between: the number of parts past machine 1
    (buffer + machine 2 + machine 1 blocked) is a birth-death chain on 0..k+2 with equal rates, so throughput is
    mu (k+2)/(k+3) and machine 1 is blocked 1/(k+3) of the time."""
    line = line_from_dict(
        {
            "name": "two",
            "machines": [
                {"name": "m1", "operation": "a", "cycle_time_s": exp(60)},
                {"name": "m2", "operation": "b", "cycle_time_s": exp(60)},
            ],
            "buffers": [{"name": "between", "before": "b", "capacity": k}],
        }
    )
    s = run_replications(line, hours=100, replications=10, seed=3, warmup_h=5, record=False)
    check(s.stats["throughput_per_h"], 60 * (k + 2) / (k + 3), "throughput")
    check(s.stats["machines.m1.blocked"], 1 / (k + 3), "m1 blocked")
    check(s.stats["machines.m2.starved"], 1 / (k + 3), "m2 starved")
    assert s.stats["machines.m1.starved"].mean == 0  # a saturated line's first machine never starves
