import json

import pytest

from linewatch.scheduling.formats import instance_to_json, load_instance
from linewatch.scheduling.model import Instance, InstanceError, Job, Operation, Option, Window
from linewatch.scheduling.plan import PLAN_VERSION, Assignment, Plan, PlanError, check_plan, load_plan, save_plan

JSPLIB = """# a comment
# another
2 2
0 3 1 2
1 4 0 1
"""

TAILLARD = """Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound
2 2 0 0 10 9
Times
3 2
4 1
Machines
1 2
2 1
"""


def test_jsplib_and_taillard_read_the_same_instance(tmp_path):
    (tmp_path / "a").write_text(JSPLIB)
    (tmp_path / "b.txt").write_text(TAILLARD)
    a, b = load_instance(tmp_path / "a"), load_instance(tmp_path / "b.txt")
    for inst in (a, b):
        assert inst.n_machines == 2 and len(inst.jobs) == 2
        assert [[(o.options[0].machine, o.options[0].duration) for o in j.operations] for j in inst.jobs] == [
            [(0, 3), (1, 2)],
            [(1, 4), (0, 1)],
        ]


def test_json_round_trip_keeps_everything(tmp_path):
    inst = Instance(
        [
            Job(
                [Operation([Option(0, 3), Option(1, 5)]), Operation([Option(2, 2)])],
                name="A",
                release=1,
                due=9,
                weight=2,
            ),
            Job([Operation([Option(1, 4)])], name="B"),
        ],
        3,
        name="cell",
        machine_names=["saw", "mill", "drill"],
        unavailable=[Window(1, 5, 8), Window(0, 20, None)],
        setups={0: [[0, 2], [3, 0]]},
    )
    p = tmp_path / "i.json"
    p.write_text(json.dumps(instance_to_json(inst)))
    back = load_instance(p)
    assert instance_to_json(back) == instance_to_json(inst)


def test_json_accepts_machine_names(tmp_path):
    doc = {"machines": ["saw", "mill"], "jobs": [{"operations": [{"machine": "mill", "duration": 2}]}]}
    (tmp_path / "i.json").write_text(json.dumps(doc))
    assert load_instance(tmp_path / "i.json").jobs[0].operations[0].options[0].machine == 1


@pytest.mark.parametrize(
    ("jobs", "windows", "message"),
    [
        ([Job([Operation([])])], [], "no eligible machine"),
        ([Job([Operation([Option(0, -1)])])], [], "negative duration"),
        ([Job([Operation([Option(5, 1)])])], [], "unknown machine 5"),
        ([Job([])], [], "has no operations"),
        ([Job([Operation([Option(0, 1)])])], [Window(0, 0, None)], "down indefinitely"),
        ([Job([Operation([Option(0, 1)])])], [Window(3, 0, 1)], "unknown machine 3"),
    ],
)
def test_validation_names_the_problem(jobs, windows, message):
    with pytest.raises(InstanceError, match=message):
        Instance(jobs, 2, unavailable=windows).validate()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("2 2\n0 1 1 1\n", "2 jobs but has 1"),
        ("1 2\n0 1 1\n", "needs 2 machine/duration pairs"),
        ("x y\n", "whole numbers"),
        ('{"jobs": []', "not valid JSON"),
        ('{"machines": 2}', "missing 'jobs'"),
    ],
)
def test_malformed_files_say_what_is_wrong(tmp_path, text, message):
    p = tmp_path / "bad"
    p.write_text(text)
    with pytest.raises(InstanceError, match=message):
        load_instance(p)


def _tiny_plan() -> Plan:
    inst = Instance([Job([Operation([Option(0, 3)]), Operation([Option(1, 2)])]), Job([Operation([Option(0, 2)])])], 2)
    return Plan(inst, [Assignment(0, 0, 0, 0, 3), Assignment(0, 1, 1, 3, 5), Assignment(1, 0, 0, 3, 5)])


def test_checker_accepts_a_good_plan_and_catches_each_kind_of_fault():
    good = _tiny_plan()
    assert check_plan(good) == []
    inst = good.instance
    faults = {
        "at once": [Assignment(0, 0, 0, 0, 3), Assignment(0, 1, 1, 3, 5), Assignment(1, 0, 0, 2, 4)],
        "not one of": [Assignment(0, 0, 1, 0, 3), Assignment(0, 1, 1, 3, 5), Assignment(1, 0, 0, 3, 5)],
        "lasts": [Assignment(0, 0, 0, 0, 2), Assignment(0, 1, 1, 3, 5), Assignment(1, 0, 0, 3, 5)],
        "before operation 0 ends": [Assignment(0, 0, 0, 0, 3), Assignment(0, 1, 1, 2, 4), Assignment(1, 0, 0, 3, 5)],
        "not planned": [Assignment(0, 0, 0, 0, 3), Assignment(0, 1, 1, 3, 5)],
        "twice": [Assignment(0, 0, 0, 0, 3), Assignment(0, 1, 1, 3, 5), Assignment(1, 0, 0, 3, 5)] * 2,
    }
    for message, ops in faults.items():
        assert any(message in p for p in check_plan(Plan(inst, ops))), message
    inst.unavailable.append(Window(1, 4, 6))
    assert any("unavailable" in p for p in check_plan(good))
    inst.unavailable.clear()
    inst.jobs[1].release = 4
    assert any("release" in p for p in check_plan(good))


def test_plan_file_round_trip_and_newer_version(tmp_path):
    plan = _tiny_plan()
    save_plan(plan, tmp_path / "p.json")
    back = load_plan(tmp_path / "p.json")
    assert back.assignments == sorted(plan.assignments, key=lambda a: (a.start, a.machine, a.job))
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["format_version"] = PLAN_VERSION + 1
    (tmp_path / "new.json").write_text(json.dumps(doc))
    with pytest.raises(PlanError, match="newer than this linewatch reads"):
        load_plan(tmp_path / "new.json")
    doc["format_version"] = PLAN_VERSION
    doc["operations"][0]["start"] += 1
    (tmp_path / "broken.json").write_text(json.dumps(doc))
    with pytest.raises(PlanError, match="breaks its instance"):
        load_plan(tmp_path / "broken.json")
