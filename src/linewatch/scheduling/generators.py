"""Random instances in Taillard's style (durations 1..99, each job visits every machine once in random order), with
optional machine choice and due dates: for the tests (small, checked by brute force) and the replanning benchmark
(100 jobs x 10 machines), where no published instance has the needed size or features."""

from __future__ import annotations

import random

from linewatch.scheduling.model import Instance, Job, Operation, Option


def random_jobshop(
    n_jobs: int,
    n_machines: int,
    *,
    seed: int = 0,
    max_duration: int = 99,
    alternatives: int = 1,
    due_factor: float | None = None,
    ops_per_job: int | None = None,
) -> Instance:
    """``alternatives`` > 1 gives each operation that many eligible machines (durations within +-30% of each
    other); ``due_factor`` sets each job's due date to that factor times its total work (tight below ~1.5)."""
    rng = random.Random(seed)
    jobs = []
    for j in range(n_jobs):
        machines = rng.sample(range(n_machines), n_machines)[: ops_per_job or n_machines]
        ops = []
        for mach in machines:
            base = rng.randint(1, max_duration)
            others = rng.sample([m for m in range(n_machines) if m != mach], min(alternatives, n_machines) - 1)
            opts = [Option(mach, base)] + [Option(m, max(1, round(base * rng.uniform(0.7, 1.3)))) for m in others]
            ops.append(Operation(opts))
        job = Job(ops, name=f"J{j}", weight=float(rng.randint(1, 3)))
        if due_factor is not None:
            job.due = round(due_factor * sum(o.min_duration for o in ops))
        jobs.append(job)
    return Instance(jobs, n_machines, name=f"random-{n_jobs}x{n_machines}-s{seed}").validate()
