"""Running a schedule's plan on the simulated line, checked against theory: with no failures and fixed durations the
simulation reproduces the plan exactly (makespan, every job's end, tardiness); with failures it can only be later,
and its figures are summarised with confidence intervals; the line's machines must be the plan's."""

from __future__ import annotations

import pytest

from linewatch.scheduling.generators import random_jobshop
from linewatch.scheduling.model import Instance, Job, Operation, Option, Window
from linewatch.scheduling.rules import dispatch, solve_rules
from linewatch.twin.model import TwinModelError, line_from_dict
from linewatch.twin.plansim import PlanRun, planned_figures, run_plan, simulate_plan
from linewatch.twin.sim import InitialState, MachineStart

NAMES = ["saw", "mill", "drill", "press"]


def _line(failures: bool = False, cycle=30, inspection=None, shifts=None) -> dict:
    doc = {
        "name": "cell",
        "machines": [
            {
                "name": n,
                "operation": n,
                "cycle_time_s": cycle,
                **({"failures": [{"cause": "jam", "mtbf_h": 2, "mttr_min": 20}]} if failures else {}),
            }
            for n in NAMES
        ],
    }
    if inspection:
        doc["inspections"] = [inspection]
    if shifts:
        doc["shifts"] = shifts
    return doc


def _instance(seed: int = 1, due: float | None = 1.3) -> Instance:
    inst = random_jobshop(8, 4, seed=seed, max_duration=30, due_factor=due)
    inst.machine_names = list(NAMES)
    return inst.validate()


@pytest.mark.parametrize("rule", ["spt", "mwkr", "edd"])
def test_without_failures_and_with_fixed_durations_the_plan_is_reproduced_exactly(rule):
    plan = dispatch(_instance(), rule)
    line = line_from_dict(_line())
    res = simulate_plan(line, plan, seed=3)
    assert res["makespan"] == plan.makespan
    assert res["weighted_tardiness"] == pytest.approx(plan.weighted_tardiness)
    assert res["late_jobs"] == len(plan.late_jobs())
    ends = plan.job_ends()
    for j, job in enumerate(plan.instance.jobs):
        assert res["jobs"][job.name]["end"] == ends[j]
        assert res["jobs"][job.name]["lateness"] == 0
    assert res["failures"] == 0 and res["downtime"] == 0 and res["unfinished"] == 0
    # utilisation: each machine's planned work over the makespan
    for m, name in enumerate(NAMES):
        work = sum(a.end - a.start for a in plan.assignments if a.machine == m)
        assert res["machines"][name]["utilisation"] == pytest.approx(work / plan.makespan)
    # a plan document (JSON) is the same plan; "earliest" release cannot end later than the plan
    assert simulate_plan(line, plan.to_json(), seed=3)["makespan"] == plan.makespan
    assert simulate_plan(line, plan, release="earliest")["makespan"] <= plan.makespan


def test_windows_and_setups_of_the_instance_are_kept():
    jobs = [Job([Operation([Option(0, 10)]), Operation([Option(1, 5)])], name=f"J{j}") for j in range(3)]
    inst = Instance(
        jobs,
        2,
        machine_names=["saw", "mill"],
        unavailable=[Window(0, 12, 20)],
        setups={0: [[0, 2, 2], [2, 0, 2], [2, 2, 0]]},
    ).validate()
    plan = solve_rules(inst, rule="spt")
    res = simulate_plan(line_from_dict(_line()), plan)
    assert res["makespan"] == plan.makespan and res["machines"]["saw"]["setup"] > 0


def test_with_failures_the_plan_is_late_and_the_interval_holds_the_mean():
    plan = solve_rules(_instance(), rule="best")
    line = line_from_dict(_line(failures=True))
    s = run_plan(line, plan, replications=12, seed=5)
    mk = s.stats["makespan"]
    assert mk.n == 12 and mk.low <= mk.mean <= mk.high and mk.half_width > 0
    assert all(r["makespan"] >= plan.makespan for r in s.results)
    assert mk.mean > plan.makespan  # 20 min repairs every 2 running hours on a plan of hours: later on average
    assert s.stats["downtime"].mean > 0 and s.stats["failures"].mean > 0
    assert s.stats["weighted_tardiness"].mean >= plan.weighted_tardiness
    assert all(j["lateness"]["mean"] >= 0 for j in s.jobs)
    out = s.to_json()
    assert out["planned"] == planned_figures(plan) and out["replications"] == 12
    assert set(out["stats"]) >= {"makespan", "weighted_tardiness", "late_jobs", "machines.saw.utilisation"}
    # replication i alone gives the same numbers
    again = simulate_plan(line, plan, seed=s.seeds[4])
    assert again["makespan"] == s.results[4]["makespan"]


def test_variable_durations_scale_the_plan_by_the_models_cycle_times():
    plan = solve_rules(_instance(due=None), rule="spt")
    line = line_from_dict(_line(cycle={"dist": "lognormal", "mean": 30, "cv": 0.3}))
    s = run_plan(line, plan, replications=8, seed=2)
    assert s.stats["makespan"].sd > 0  # durations vary
    assert simulate_plan(line, plan, durations="plan")["makespan"] == plan.makespan
    # "speed": the mean cycle (35 s) over the ideal (30 s) slows every operation by 1/6 on average
    doc = _line(cycle={"dist": "uniform", "low": 30, "high": 40})
    for m in doc["machines"]:
        m["ideal_cycle_time_s"] = 30
    fast = simulate_plan(line_from_dict(doc), plan, durations="variability", seed=1)["makespan"]
    slowed = simulate_plan(line_from_dict(doc), plan, durations="speed", seed=1)["makespan"]
    assert slowed > fast and slowed >= plan.makespan


def test_machines_down_at_the_start_and_shifts_delay_the_plan():
    plan = solve_rules(_instance(due=None), rule="spt")
    line = line_from_dict(_line())
    first = min((a for a in plan.assignments if a.machine == 0), key=lambda a: a.start)
    down = InitialState(machines={"saw": MachineStart("down", remaining_s=3600)})
    res = simulate_plan(line, plan, initial=down)
    assert res["makespan"] >= plan.makespan and res["jobs"][plan.instance.job_label(first.job)]["end"] > 60 + first.end
    assert res["machines"]["saw"]["downtime"] == 60
    # a day shift 08:00-16:00, the run starting at 06:00: nothing runs before 08:00
    shifted = line_from_dict(_line(shifts=[{"name": "day", "start": "08:00", "end": "16:00"}]))
    res = simulate_plan(shifted, plan, start="2024-01-01T06:00:00")
    assert res["makespan"] >= plan.makespan + 120


def test_scrap_drops_a_job_and_rework_repeats_the_operation():
    plan = solve_rules(_instance(due=None), rule="spt")
    ins = {"machine": "drill", "station": "cam", "defect_rate": 0.5, "rework_fraction": 0.5, "rework_to": "drill"}
    line = line_from_dict(_line(inspection=ins))
    s = run_plan(line, plan, replications=6, seed=1)
    assert s.stats["scrapped"].mean > 0 and s.stats["reworked"].mean > 0
    assert all(r["completed"] + r["scrapped"] == len(plan.instance.jobs) for r in s.results)


def test_a_plan_naming_machines_the_model_lacks_is_a_clear_error():
    inst = _instance()
    inst.machine_names = ["saw", "mill", "lathe", "grinder"]
    plan = solve_rules(inst, rule="spt")
    with pytest.raises(TwinModelError) as e:
        PlanRun(line_from_dict(_line()), plan)
    msg = str(e.value)
    assert "'lathe', 'grinder' are not in the line model" in msg and "saw, mill, drill, press" in msg
    unnamed = random_jobshop(3, 2, seed=1)
    with pytest.raises(TwinModelError, match="numbered, not named"):
        PlanRun(line_from_dict(_line()), solve_rules(unnamed, rule="spt"))
    with pytest.raises(TwinModelError, match="not a linewatch plan"):
        PlanRun(line_from_dict(_line()), {"operations": []})
    with pytest.raises(TwinModelError, match="release must be one of"):
        PlanRun(line_from_dict(_line()), plan.to_json(), release="soon")
