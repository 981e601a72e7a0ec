import json

import pytest
from typer.testing import CliRunner

from linewatch.cli import app
from linewatch.scheduling.generators import random_jobshop
from linewatch.scheduling.plan import plan_from_json

from .conftest import assert_feasible

RUNNER = CliRunner()
JSPLIB = "3 3\n0 3 1 2 2 2\n0 2 2 1 1 4\n1 4 2 3 0 1\n"


def run(*args):
    """A ``linewatch schedule`` command in this process (an exception that escaped the command's own handling would
    be exit 1, never the users' exit 2)."""
    return RUNNER.invoke(app, ["schedule", *map(str, args)])


def test_solve_json_and_replan(tmp_path):
    (tmp_path / "tiny").write_text(JSPLIB)
    r = run("solve", tmp_path / "tiny", "--time-limit", "5", "--json", "--out", tmp_path / "plan.json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["status"] == "optimal" and doc["gap"] == 0 and doc["bound"] == doc["makespan"]
    assert {"job", "index", "machine", "start", "end"} <= set(doc["operations"][0])
    plan = assert_feasible(plan_from_json(doc))
    (tmp_path / "down.json").write_text(json.dumps({"type": "machine_down", "time": 2, "machine": 1, "until": 9}))
    r = run("replan", tmp_path / "plan.json", tmp_path / "down.json", "--time-limit", "2", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    new = assert_feasible(plan_from_json(out["plan"]))
    assert not [a for a in new.assignments if a.machine == 1 and a.start < 9 and a.end > 2]
    assert "moved_operations" in out["changes"] and out["first_feasible"]["seconds"] >= 0
    assert plan.makespan <= new.makespan
    human = run("solve", tmp_path / "tiny", "--solver", "rules", "--rule", "spt")
    assert human.exit_code == 0 and "makespan" in human.stdout and "machine 0:" in human.stdout


def test_tardiness_objective_from_json_instance(tmp_path):
    from linewatch.scheduling.formats import instance_to_json

    (tmp_path / "i.json").write_text(json.dumps(instance_to_json(random_jobshop(5, 3, seed=1, due_factor=1.2))))
    r = run("solve", tmp_path / "i.json", "--objective", "tardiness", "--time-limit", "2", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["objective"] == "tardiness" and doc["value"] == doc["weighted_tardiness"]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad")
    (tmp_path / "tiny").write_text(JSPLIB)
    (tmp_path / "garbage").write_bytes(b"\x00\xffnot an instance")
    (tmp_path / "short").write_text("3 3\n0 3 1 2 2 2\n")
    r = run("solve", tmp_path / "tiny", "--solver", "rules", "--out", tmp_path / "plan.json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    doc["format_version"] += 1
    (tmp_path / "newer.json").write_text(json.dumps(doc))
    (tmp_path / "event.json").write_text(json.dumps({"type": "machine_down", "time": 1, "machine": 0, "until": 5}))
    (tmp_path / "badevent.json").write_text(json.dumps({"type": "machine_down", "time": 1, "machine": 7}))
    # what a typo, a generator gone wrong or a hostile file puts in an instance, a plan or an event
    (tmp_path / "deep.json").write_text("{" + '"a": [' * 100_000 + "]" * 100_000 + "}")
    one = {"machines": 2, "jobs": [{"operations": [{"machine": 0, "duration": 3}, {"machine": 1, "duration": 2}]}]}
    for name, change in {
        "huge_duration": {"jobs": [{"operations": [{"machine": 0, "duration": 10**21}]}]},
        "huge_release": {"jobs": [{**one["jobs"][0], "release": 2**62}]},
        "many_machines": {"machines": 10**9},
        "named_twice": {"machines": ["saw", "saw"]},
        "nan_weight": {"jobs": [{**one["jobs"][0], "weight": float("nan")}]},
        "infinite_setup": {"setups": {"0": [[float("inf")]]}},
    }.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({**one, **change}))
    for name, change in {"now_null": {"now": None}, "weights_number": {"weights": 5}}.items():
        (tmp_path / f"plan_{name}.json").write_text(json.dumps({**doc, "format_version": 1, **change}))
    for name, event in {
        "late": {"type": "machine_down", "time": 10**30, "machine": 0},
        "long_delay": {"type": "operation_delayed", "time": 1, "job": 0, "index": 0, "delay": 10**30},
        "job_true": {"type": "operation_delayed", "time": 1, "job": True, "index": 0, "delay": 3},
    }.items():
        (tmp_path / f"event_{name}.json").write_text(json.dumps(event))
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["solve", "{tmp}/nope"],
        ["solve", "{tmp}"],
        ["solve", "{tmp}/garbage"],
        ["solve", "{tmp}/short"],
        ["solve", "{tmp}/tiny", "--objective", "fastest"],
        ["solve", "{tmp}/tiny", "--time-limit", "-3"],
        ["solve", "{tmp}/tiny", "--solver", "magic"],
        ["solve", "{tmp}/tiny", "--rule", "spt"],
        ["replan", "{tmp}/garbage", "{tmp}/event.json"],
        ["replan", "{tmp}/newer.json", "{tmp}/event.json"],
        ["replan", "{tmp}/plan.json", "{tmp}/badevent.json"],
        ["replan", "{tmp}/plan.json", "{tmp}/nope.json"],
        ["solve", "{tmp}/deep.json"],
        ["solve", "{tmp}/huge_duration.json"],
        ["solve", "{tmp}/huge_release.json"],
        ["solve", "{tmp}/many_machines.json"],
        ["solve", "{tmp}/named_twice.json"],
        ["solve", "{tmp}/nan_weight.json"],
        ["solve", "{tmp}/infinite_setup.json"],
        ["solve", "{tmp}/tiny", "--time-limit", "nan"],
        ["solve", "{tmp}/tiny", "--objective", "weighted", "--makespan-weight", "inf"],
        ["solve", "{tmp}/tiny", "--seed", "4294967296"],
        ["replan", "{tmp}/plan.json", "{tmp}/deep.json"],
        ["replan", "{tmp}/plan_now_null.json", "{tmp}/event.json"],
        ["replan", "{tmp}/plan_weights_number.json", "{tmp}/event.json"],
        ["replan", "{tmp}/plan.json", "{tmp}/event_late.json"],
        ["replan", "{tmp}/plan.json", "{tmp}/event_long_delay.json"],
        ["replan", "{tmp}/plan.json", "{tmp}/event_job_true.json"],
    ],
)
def test_bad_input_exits_2_with_one_line(bad_files, args):
    tmp_path = bad_files
    r = run(*[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
