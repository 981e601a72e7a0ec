import pytest

from linewatch.scheduling.cpsat import solve_cpsat
from linewatch.scheduling.generators import random_jobshop
from linewatch.scheduling.replan import Event, EventError, event_from_json, replan

from .conftest import assert_feasible


@pytest.fixture(scope="module")
def base():
    inst = random_jobshop(8, 4, seed=21, alternatives=2, due_factor=2.0)
    return assert_feasible(solve_cpsat(inst, time_limit=1, workers=1))


def _started(plan, now):
    return {(a.job, a.index): a for a in plan.assignments if a.start < now}


@pytest.mark.parametrize("until", [None, "finite"])
def test_machine_down_keeps_started_ops_and_avoids_the_machine(base, until):
    now = base.makespan // 3
    busy = next(a for a in base.assignments if a.start < now < a.end)  # a running op: it will be interrupted
    end = None if until is None else now + 40
    r = replan(base, Event("machine_down", now, machine=busy.machine, until=end), time_limit=1, workers=1)
    for p in (r.first, r.plan):
        assert_feasible(p)
        new = p.by_op()
        for key, a in _started(base, now).items():
            if key != (busy.job, busy.index) and not (key[0] == busy.job and key[1] > busy.index):
                assert new[key] == a
        for a in p.assignments:
            if a.machine == busy.machine and (a.job, a.index) in _started(base, now):
                continue
            if a.machine == busy.machine:
                assert a.start >= (end if end is not None else 10**9) or a.end <= now
            assert a.start >= now or (a.job, a.index) in _started(base, now)
    assert (busy.job, busy.index) in r.changes.interrupted
    assert r.plan.by_op()[(busy.job, busy.index)].start >= now
    assert r.first_s <= r.total_s


def test_change_cost_trades_moves_against_the_objective(base):
    now = base.makespan // 4
    ev = Event("machine_down", now, machine=0, until=now + 30)
    from linewatch.scheduling.replan import ChangeCost

    # On an idle machine CP-SAT (one worker) proves both optimal within the limit: the free repair in about 0.2 s
    # (total shift 435), the calm one in 7 s (263). A 2 s limit stopped the calm one short: 338 idle, and 498 (more
    # than the free one's) under three test processes on two cores.
    calm = replan(base, ev, time_limit=10, workers=1, cost=ChangeCost(per_move=1000, per_shift=1000))
    free = replan(base, ev, time_limit=10, workers=1, cost=ChangeCost(per_move=0, per_shift=0))
    assert calm.changes.total_shift <= free.changes.total_shift
    assert free.plan.makespan <= calm.plan.makespan


def test_rush_order_and_delay_and_machine_back(base):
    inst = base.instance
    now = base.makespan // 2
    rush = {"name": "rush", "due": now + 50, "weight": 10, "operations": [{"machine": 1, "duration": 7}]}
    r = replan(base, event_from_json({"type": "rush_order", "time": now, "job": rush}, inst), time_limit=1, workers=1)
    assert_feasible(r.plan)
    assert len(r.plan.instance.jobs) == len(inst.jobs) + 1
    assert r.plan.by_op()[(len(inst.jobs), 0)].start >= now

    a = next(a for a in base.assignments if a.start < now < a.end)
    ev = event_from_json({"type": "operation_delayed", "time": now, "job": a.job, "index": a.index, "delay": 9}, inst)
    r = replan(base, ev, time_limit=1, workers=1)
    assert_feasible(r.plan)
    assert r.plan.by_op()[(a.job, a.index)].end == a.end + 9

    down = replan(base, Event("machine_down", now, machine=2, until=None), time_limit=1, workers=1).plan
    back = replan(down, Event("machine_up", now + 5, machine=2), time_limit=1, workers=1)
    assert_feasible(back.plan)
    assert all(w.end is not None for w in back.plan.instance.unavailable)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "explode", "time": 1}, "unknown event type"),
        ({"type": "machine_down", "time": 1, "machine": 99}, "unknown machine"),
        ({"type": "machine_down", "time": -1, "machine": 0}, "'time'"),
        ({"type": "operation_delayed", "time": 1, "job": 0, "index": 99, "delay": 3}, "no operation"),
        ({"type": "rush_order", "time": 1}, "needs a 'job'"),
    ],
)
def test_bad_events_are_refused(base, doc, message):
    with pytest.raises(EventError, match=message):
        event_from_json(doc, base.instance)


def test_down_for_good_with_no_alternative_is_a_clear_error():
    inst = random_jobshop(4, 3, seed=22)
    plan = solve_cpsat(inst, time_limit=1, workers=1)
    with pytest.raises(EventError, match="down indefinitely"):
        replan(plan, Event("machine_down", 1, machine=0), time_limit=1, workers=1)
