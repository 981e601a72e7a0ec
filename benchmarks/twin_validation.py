"""The simulation against queueing theory, with longer runs than the tests: each figure's replication mean, 95%
confidence interval and the formula's value.

    python benchmarks/twin_validation.py [--replications 20] [--hours 500] [--workers 1]

M/M/1 (arrivals every 75 s, service 60 s: rho 0.8), a Jackson tandem line (arrivals 60 s, services 40 s and 45 s,
unlimited buffers), and a saturated two-machine line with exponential 60 s machines and a buffer of K between them
(throughput mu (K+2)/(K+3), machine 1 blocked 1/(K+3) of the time). Warm-up 5% of the horizon. Little's law: the
largest relative gap between WIP and throughput x lead time over the replications.
"""

from __future__ import annotations

import argparse

from linewatch.twin.experiments import run_replications
from linewatch.twin.model import line_from_dict


def exp(mean):
    return {"dist": "exponential", "mean": mean}


def row(name, stat, theory):
    ok = "yes" if stat.contains(theory) else "**no**"
    print(f"| {name} | {theory:.4g} | {stat.mean:.4g} | {stat.low:.4g} .. {stat.high:.4g} | {ok} |", flush=True)


def little(s):
    return max(abs(r["wip"] - r["throughput_per_h"] / 3600 * r["lead_time_s"]) / r["wip"] for r in s.results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replications", type=int, default=20)
    ap.add_argument("--hours", type=float, default=500)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    kw = {
        "hours": a.hours,
        "replications": a.replications,
        "warmup_h": a.hours / 20,
        "record": False,
        "workers": a.workers,
    }
    print(f"{a.replications} replications x {a.hours:g} h, warm-up {a.hours / 20:g} h, 95% intervals")
    print("| figure | theory | simulated mean | 95% CI | inside |")
    print("|---|---|---|---|---|")
    lam, mu = 1 / 75, 1 / 60
    rho = lam / mu
    mm1 = line_from_dict(
        {
            "name": "mm1",
            "arrivals": {"interarrival_s": exp(75)},
            "machines": [{"name": "server", "operation": "serve", "cycle_time_s": exp(60)}],
            "buffers": [{"name": "queue", "before": "serve", "capacity": None}],
        }
    )
    s = run_replications(mm1, seed=1, **kw)
    row("M/M/1 utilisation", s.stats["machines.server.utilisation"], rho)
    row("M/M/1 mean queue Lq", s.stats["buffers.queue.mean"], rho**2 / (1 - rho))
    row("M/M/1 mean in system L", s.stats["wip"], rho / (1 - rho))
    row("M/M/1 throughput / h", s.stats["throughput_per_h"], lam * 3600)
    row("M/M/1 time in system W (s)", s.stats["lead_time_s"], 1 / (mu - lam))
    print(f"| M/M/1 Little's law, largest gap | 0 | {100 * little(s):.2f}% | | |")
    lam, mu1, mu2 = 1 / 60, 1 / 40, 1 / 45
    tandem = line_from_dict(
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
    s = run_replications(tandem, seed=2, **kw)
    for m, q, mu_i in (("m1", "q1", mu1), ("m2", "q2", mu2)):
        r_i = lam / mu_i
        row(f"tandem {m} utilisation", s.stats[f"machines.{m}.utilisation"], r_i)
        row(f"tandem {q} mean queue", s.stats[f"buffers.{q}.mean"], r_i**2 / (1 - r_i))
    row("tandem throughput / h", s.stats["throughput_per_h"], lam * 3600)
    row("tandem time in system (s)", s.stats["lead_time_s"], 1 / (mu1 - lam) + 1 / (mu2 - lam))
    print(f"| tandem Little's law, largest gap | 0 | {100 * little(s):.2f}% | | |")
    for k in (1, 3, 10):
        two = line_from_dict(
            {
                "name": "two",
                "machines": [
                    {"name": "m1", "operation": "a", "cycle_time_s": exp(60)},
                    {"name": "m2", "operation": "b", "cycle_time_s": exp(60)},
                ],
                "buffers": [{"name": "between", "before": "b", "capacity": k}],
            }
        )
        s = run_replications(two, seed=3, **kw)
        row(f"2 machines, K={k}: throughput / h", s.stats["throughput_per_h"], 60 * (k + 2) / (k + 3))
        row(f"2 machines, K={k}: m1 blocked", s.stats["machines.m1.blocked"], 1 / (k + 3))


if __name__ == "__main__":
    main()
