"""Shared pieces of the scheduling tests: a brute-force optimum for tiny instances, and the plan check every
result goes through."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("ortools")

from linewatch.scheduling.model import Instance  # noqa: E402
from linewatch.scheduling.plan import Plan, check_plan  # noqa: E402


def assert_feasible(plan: Plan, instance: Instance | None = None) -> Plan:
    problems = check_plan(plan, instance)
    assert not problems, problems[:3]
    return plan


def brute_force(inst: Instance, objective: str = "makespan") -> float:
    """The optimum over every machine choice and every order of operations on each machine (semi-active schedules
    hold an optimum of any regular objective). Tiny instances only."""
    ops = [(j, k) for j, job in enumerate(inst.jobs) for k in range(len(job.operations))]
    best = float("inf")
    for choice in itertools.product(*[inst.jobs[j].operations[k].options for j, k in ops]):
        machine_of = {op: o for op, o in zip(ops, choice, strict=True)}
        per_machine = [[op for op in ops if machine_of[op].machine == m] for m in range(inst.n_machines)]
        for orders in itertools.product(*[itertools.permutations(x) for x in per_machine]):
            start: dict = {}
            mach_free = [0] * inst.n_machines
            pos = [0] * inst.n_machines
            job_free = [j.release for j in inst.jobs]
            progress = True
            while progress:
                progress = False
                for m, order in enumerate(orders):
                    if pos[m] < len(order):
                        j, k = order[pos[m]]
                        if k == 0 or (j, k - 1) in start:
                            s = max(mach_free[m], job_free[j])
                            d = machine_of[(j, k)].duration
                            start[(j, k)] = s
                            mach_free[m] = job_free[j] = s + d
                            pos[m] += 1
                            progress = True
            if len(start) < len(ops):
                continue  # these orders deadlock (a cycle)
            ends = [job_free[j] for j in range(len(inst.jobs))]
            if objective == "makespan":
                value = max(ends)
            else:
                value = sum(job.weight * max(0, e - job.due) for job, e in zip(inst.jobs, ends, strict=True) if job.due)
            best = min(best, value)
    return best
