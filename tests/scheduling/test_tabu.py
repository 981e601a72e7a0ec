"""The tabu search warm start: feasible plans, never worse than its start, optimal on a tiny instance (checked by
brute force), and used by CP-SAT only where it applies."""

from __future__ import annotations

import pytest

from linewatch.scheduling import tabu
from linewatch.scheduling.cpsat import solve_cpsat
from linewatch.scheduling.generators import random_jobshop
from linewatch.scheduling.model import Instance, Job, Operation, Option, Window
from linewatch.scheduling.rules import best_rule

from .conftest import assert_feasible, brute_force

pytestmark = pytest.mark.skipif(not tabu.HAVE_NUMBA, reason="numba is not installed (the scheduling extra)")


def test_search_improves_a_rule_plan_and_stays_feasible():
    inst = random_jobshop(15, 8, seed=3)
    start, _ = best_rule(inst, "makespan")
    plan = tabu.tabu_search(inst, start, time_limit=1.0, threads=2, seed=1)
    assert_feasible(plan, inst)
    assert plan.solver == "tabu"
    assert plan.meta["iterations"] > 0
    lower = plan.meta["lower_bound"]
    assert lower <= plan.makespan < start.makespan


def test_a_stall_longer_than_one_chunk_still_sends_the_search_back_to_its_best_plan():
    # the search runs in chunks of 2,000 iterations; its count of iterations without a better plan must carry across
    # them, or a limit above one chunk never fires (it did not before RESTART_AFTER: swv12 stayed 9.7 % above the best
    # known plan where going back reaches 2 %)
    inst = random_jobshop(15, 8, seed=3)
    start, _ = best_rule(inst, "makespan")
    plan = tabu.tabu_search(inst, start, time_limit=1.0, threads=1, seed=1, restart_after=5000)
    assert_feasible(plan, inst)
    if plan.makespan > plan.meta["lower_bound"]:  # the search ran its whole second
        assert plan.meta["restarts"] > 0, plan.meta
    never = tabu.tabu_search(inst, start, time_limit=0.3, threads=1, seed=1, restart_after=10**12)
    assert never.meta["restarts"] == 0
    assert tabu.RESTART_AFTER > 2000


def test_search_reaches_the_optimum_of_a_tiny_instance():
    inst = random_jobshop(3, 3, seed=7)
    start, _ = best_rule(inst, "makespan")
    plan = tabu.tabu_search(inst, start, time_limit=0.5, threads=1, seed=0)
    assert_feasible(plan, inst)
    assert plan.makespan == brute_force(inst)


def test_releases_are_respected():
    inst = random_jobshop(6, 4, seed=5)
    for j, job in enumerate(inst.jobs):
        job.release = 40 * j
    start, _ = best_rule(inst, "makespan")
    plan = tabu.tabu_search(inst, start, time_limit=0.5, threads=1)
    assert_feasible(plan, inst)
    assert all(a.start >= inst.jobs[a.job].release for a in plan.assignments)


def test_cpsat_uses_the_warm_start_on_plain_job_shops_only():
    large = random_jobshop(15, 10, seed=2)  # over PROBE_OPERATIONS: no CP-SAT probe first
    plan = solve_cpsat(large, time_limit=2.0, tabu_share=0.5)
    assert_feasible(plan, large)
    assert plan.meta["tabu"]["makespan"] >= plan.makespan
    plain = random_jobshop(8, 5, seed=2)
    flexible = random_jobshop(6, 4, seed=2, alternatives=2)
    assert not tabu.applies(flexible)
    assert "tabu" not in solve_cpsat(flexible, time_limit=1.0, tabu_share=0.5).meta
    assert "tabu" not in solve_cpsat(plain, time_limit=1.0, tabu_share=0.0).meta
    assert not tabu.applies(plain, objective="tardiness")
    down = Instance(plain.jobs, plain.n_machines, unavailable=[Window(0, 10, 20)])
    assert not tabu.applies(down)


def test_without_numba_nothing_applies(monkeypatch):
    monkeypatch.setattr(tabu, "HAVE_NUMBA", False)
    inst = Instance([Job([Operation([Option(0, 3)]), Operation([Option(1, 2)])])], 2)
    assert not tabu.applies(inst)
    assert "tabu" not in solve_cpsat(inst, time_limit=1.0).meta


def test_a_small_instance_proven_by_cpsat_alone_skips_the_tabu_search():
    from linewatch.scheduling.cpsat import PROBE_OPERATIONS

    small = random_jobshop(6, 6, seed=3)
    assert small.n_operations <= PROBE_OPERATIONS and tabu.applies(small)
    plan = solve_cpsat(small, time_limit=20.0, tabu_share=0.5, workers=1)
    assert_feasible(plan, small)
    assert plan.status == "optimal" and plan.bound == plan.makespan and "tabu" not in plan.meta


def _seed_generators(seed: int) -> None:
    """Seed NumPy's generator and, where the search is compiled, numba's own (which NumPy's seeding leaves alone)."""
    import numpy as np

    np.random.seed(seed)
    if tabu.HAVE_NUMBA:
        import numba

        numba.njit(lambda s: np.random.seed(s))(seed)


def test_insertion_moves_judged_feasible_keep_the_machine_orders_acyclic():
    """Moving a critical block's inner operation to one of its ends (N6), or its first or last operation into it (N7),
    can close a cycle; the search takes only the moves Balas and Vazacopoulos' conditions clear. Each cleared move on
    the critical paths of many rule plans, applied, gives a plan (no cycle, every operation on its machine, in job
    order) with the operation where it was meant to go. N7's moves are N6's and more."""
    import numpy as np

    checked, beyond = 0, 0
    for seed in range(40):
        inst = random_jobshop(12, 6, seed=seed)
        start, _ = best_rule(inst, "makespan")
        prob = tabu._Problem(inst)
        nxt, prv = prob.links(start)
        n = prob.n
        heads, tails, order, indeg = (np.zeros(n, np.int64) for _ in range(4))
        args = (prob.job_next, prob.job_prev, prob.dur, prob.release, heads, tails)
        cmax = tabu._heads_tails(nxt, prv, *args, order, indeg)
        seq, marks = np.zeros(2 * n + 2, np.int64), np.zeros((n, n), np.int32)
        found = {}
        for level in (1, 2):
            _seed_generators(seed)  # the same critical path at both levels
            path, moves_u, moves_v, moves_k = (np.zeros(4 * n + 4, np.int64) for _ in range(4))
            nm = tabu._critical_moves(cmax, nxt, prv, prob.job_prev, prob.dur, heads, tails, path, moves_u, moves_v,
                                      moves_k, level)  # fmt: skip
            found[level] = {(int(moves_k[k]), int(moves_u[k]), int(moves_v[k])) for k in range(nm)}
            assert len(found[level]) == nm  # no move twice
        assert found[1] <= found[2]
        beyond += len(found[2] - found[1])
        for kind, u, v in found[2]:
            if kind == 0:
                continue
            val, _ = tabu._insertion(kind, u, v, nxt, prv, *args, marks, 0, seq)
            if val < 0:
                continue
            a, b = nxt.copy(), prv.copy()
            tabu._insert(kind, u, v, a, b, marks.copy(), 1)
            scratch = (np.zeros(n, np.int64) for _ in range(4))  # the plan's own heads and tails stay as they are
            assert tabu._heads_tails(a, b, *args[:4], *scratch) >= 0, (seed, kind, u, v)
            assert (a[v] == u) if kind == 1 else (b[u] == v)
            assert_feasible(prob.plan(a, b, start), inst)
            checked += 1
    assert checked > 50 and beyond > 20


def test_the_search_with_and_without_insertion_moves():
    inst = random_jobshop(15, 8, seed=3)
    start, _ = best_rule(inst, "makespan")
    for moves in tabu.MOVES:
        plan = tabu.tabu_search(inst, start, time_limit=0.5, threads=1, seed=1, moves=moves)
        assert_feasible(plan, inst)
        assert plan.makespan < start.makespan
    with pytest.raises(ValueError, match="moves must be one of n5, n6, n7"):
        tabu.tabu_search(inst, start, time_limit=0.1, moves="n8")
