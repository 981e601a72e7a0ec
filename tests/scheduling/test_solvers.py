import pytest

from linewatch.scheduling.cpsat import solve_cpsat
from linewatch.scheduling.generators import random_jobshop
from linewatch.scheduling.model import Instance, Job, Operation, Option, Window
from linewatch.scheduling.rules import RULES, best_rule, dispatch

from .conftest import assert_feasible, brute_force


def _instances() -> list[Instance]:
    """Classic, flexible, with due dates, with releases, windows and setups: what the rules must always handle."""
    flex = random_jobshop(6, 4, seed=3, alternatives=2, due_factor=1.5)
    windows = random_jobshop(5, 3, seed=4)
    windows.unavailable = [Window(0, 10, 60), Window(2, 0, 25), Window(1, 200, 260)]
    windows.jobs[1].operations[0] = Operation([Option(1, 5), Option(2, 7)])
    released = random_jobshop(5, 3, seed=5, due_factor=2.0)
    for j, job in enumerate(released.jobs):
        job.release = 15 * j
    setup = random_jobshop(4, 3, seed=6)
    setup.setups = {m: [[0 if a == b else 3 + a + b for b in range(4)] for a in range(4)] for m in range(3)}
    return [random_jobshop(8, 5, seed=2), flex, windows, released, setup]


@pytest.mark.parametrize("rule", list(RULES))
def test_every_rule_gives_a_feasible_plan(rule):
    for inst in _instances():
        inst.validate()
        assert_feasible(dispatch(inst, rule))


def test_rules_differ_and_best_rule_is_the_best():
    inst = random_jobshop(10, 5, seed=7, due_factor=1.3)
    best, plans = best_rule(inst, "tardiness")
    assert len({p.makespan for p in plans.values()}) > 1
    assert best.weighted_tardiness == min(p.weighted_tardiness for p in plans.values())


def test_cpsat_finds_the_brute_force_optimum():
    inst = random_jobshop(3, 3, seed=11, max_duration=9)
    opt = brute_force(inst)
    plan = assert_feasible(solve_cpsat(inst, time_limit=10, workers=1))
    assert plan.makespan == opt
    assert plan.status == "optimal" and plan.bound == opt and plan.gap == 0
    assert dispatch(inst, "spt").makespan >= opt


def test_flexible_choice_reaches_the_brute_force_optimum():
    inst = random_jobshop(3, 3, seed=12, max_duration=9, alternatives=2, ops_per_job=2)
    opt = brute_force(inst)
    plan = assert_feasible(solve_cpsat(inst, time_limit=10, workers=1))
    assert plan.makespan == opt
    # the optimum here needs machine choices other than each operation's first option
    fixed_choice = Instance([Job([Operation(op.options[:1]) for op in j.operations]) for j in inst.jobs], 3)
    assert brute_force(fixed_choice) > opt


def test_tardiness_objective_is_optimal_and_differs_from_makespan():
    inst = Instance(
        [
            Job([Operation([Option(0, 6)]), Operation([Option(1, 2)])], due=30, weight=1),
            Job([Operation([Option(0, 2)]), Operation([Option(1, 6)])], due=30, weight=1),
            Job([Operation([Option(0, 3)])], due=3, weight=5),
        ],
        2,
    ).validate()
    opt = brute_force(inst, "tardiness")
    plan = assert_feasible(solve_cpsat(inst, objective="tardiness", time_limit=10, workers=1))
    assert plan.weighted_tardiness == opt == 0
    by_ms = assert_feasible(solve_cpsat(inst, objective="makespan", time_limit=10, workers=1))
    assert by_ms.makespan <= plan.makespan
    lex = assert_feasible(solve_cpsat(inst, objective="lexicographic", time_limit=10, workers=1))
    assert lex.weighted_tardiness == 0 and lex.makespan <= plan.makespan
    mixed = assert_feasible(solve_cpsat(inst, objective="weighted", weights=(1.0, 0.5), time_limit=10, workers=1))
    assert mixed.value() == mixed.makespan + 0.5 * mixed.weighted_tardiness
    assert mixed.status == "optimal" and mixed.bound == mixed.value()


def test_windows_releases_and_setups_are_respected_by_the_solver():
    for inst in _instances()[2:]:
        for objective in ("makespan", "tardiness", "weighted"):
            assert_feasible(solve_cpsat(inst, objective=objective, time_limit=2, workers=1))


def test_the_solver_never_returns_worse_than_the_best_rule():
    inst = random_jobshop(15, 8, seed=13)
    plan = assert_feasible(solve_cpsat(inst, time_limit=0.05, workers=1))
    assert plan.makespan <= best_rule(inst)[0].makespan


def test_a_machine_gone_for_good_before_its_work_is_done_is_a_clear_error():
    from linewatch.scheduling.model import InstanceError

    inst = random_jobshop(5, 3, seed=4)
    inst.unavailable = [Window(1, 20, None)]
    with pytest.raises(InstanceError, match="down indefinitely"):
        dispatch(inst, "mwkr")
    with pytest.raises(InstanceError, match="down indefinitely"):
        solve_cpsat(inst, time_limit=1, workers=1)
