"""``linewatch twin``: each command's output, and bad input exiting 2 with one line (never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files

import pytest
from typer.testing import CliRunner

from linewatch.cli import app
from linewatch.twin.events import StateEvent, write_events

LW = [sys.executable, "-m", "linewatch.cli", "twin"]
runner = CliRunner()
BOTTLING = str(files("linewatch.twin") / "examples" / "bottling.yaml")
SCENARIO = str(files("linewatch.twin") / "examples" / "second_capper.yaml")


class Result:
    def __init__(self, r):
        self.returncode, self.stdout, self.stderr = r.exit_code, r.stdout, r.stderr


def run(*args):
    """In process (the interpreter's start and imports cost seconds on a loaded machine)."""
    return Result(runner.invoke(app, ["twin", *map(str, args)], env={"COLUMNS": "200"}))


def run_process(*args, env=None):
    return subprocess.run(
        [*LW, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "COLUMNS": "200", **(env or {})},
    )


def test_validate():
    r = run("validate", BOTTLING)
    assert r.returncode == 0, r.stderr
    assert "bottling: valid" in r.stdout and "bottle-camera" in r.stdout
    r = run("validate", BOTTLING, "--json")
    assert json.loads(r.stdout)["name"] == "bottling"


def test_simulate_json_lines_and_table(tmp_path):
    r = run(
        "simulate",
        BOTTLING,
        "--hours",
        2,
        "--replications",
        2,
        "--seed",
        4,
        "--start",
        "2024-01-01T06:00",
        "--scenario",
        SCENARIO,
        "--json",
        "--events-out",
        tmp_path / "ev.jsonl",
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(x["scenario"], x.get("replication")) for x in lines[:4]] == [
        ("base", 0),
        ("base", 1),
        ("second capper", 0),
        ("second capper", 1),
    ]
    summary = lines[4]
    assert summary["scenario"] == "base" and summary["replications"] == 2
    assert summary["stats"]["throughput_per_h"]["ci_low"] <= summary["stats"]["throughput_per_h"]["mean"]
    assert lines[5]["scenario"] == "second capper" and "machines.capper 2.utilisation" in lines[5]["stats"]
    again = run(
        "simulate", BOTTLING, "--hours", 2, "--replications", 2, "--seed", 4, "--start", "2024-01-01T06:00", "--json"
    )
    assert [json.loads(x) for x in again.stdout.splitlines()][:2] == lines[:2]  # the seed reproduces the run
    # the events written are a file `twin oee` reads
    r = run("oee", tmp_path / "ev.jsonl", "--line", BOTTLING, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert 0 < doc["line"]["oee"] <= 1 and doc["rejected"] == []
    r = run("simulate", BOTTLING, "--hours", 2, "--replications", 2, "--start", "2024-01-01T06:00")
    assert r.returncode == 0 and "throughput / h" in r.stdout and "filler utilisation" in r.stdout
    # one replication in a closed plant (Sunday): no parts, no lead time, no interval -> nulls, strict JSON
    r = run("simulate", BOTTLING, "--hours", 1, "--replications", 1, "--start", "2024-01-07T06:00", "--json")
    assert r.returncode == 0, r.stderr
    rep, summary = (json.loads(x) for x in r.stdout.splitlines())
    assert rep["lead_time_s"] is None and rep["good"] == 0
    assert summary["stats"]["throughput_per_h"]["ci_low"] is None


def test_oee_table(tmp_path):
    events = [
        StateEvent("press", 0.0, "running"),
        StateEvent("press", 3000.0, "down", "jam", good=45, defective=2),
        StateEvent("press", 3600.0, "running"),
    ]
    write_events(events, tmp_path / "e.csv")
    r = run("oee", tmp_path / "e.csv", "--ideal", "press=60", "--from", "1970-01-01T00:00:00Z", "--to", 3600)
    assert r.returncode == 0, r.stderr
    assert "press" in r.stdout and "jam 10 min" in r.stdout and "75.0%" in r.stdout  # 45 good x 60 s / 3600 s


def test_oee_prints_a_downtime_reason_with_brackets_as_it_is(tmp_path):
    """A reason code as a plant writes it ('[E42] jam'): Rich read the bracket as markup and printed ' jam'."""
    events = [StateEvent("press", 0.0, "running"), StateEvent("press", 3000.0, "down", "[e42] jam", good=45)]
    events.append(StateEvent("press", 3600.0, "running"))
    write_events(events, tmp_path / "e.csv")
    r = runner.invoke(app, ["twin", "oee", str(tmp_path / "e.csv"), "--ideal", "press=60", "--to", "3600"])
    assert r.exit_code == 0, r.output
    assert "losses: downtime [e42] jam 10 min" in " ".join(r.stdout.split()), r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("validate", "missing.yaml"), "missing.yaml: no such file"),
        (("validate", "{bad}"), "machines[2].cycle_time_s: must be > 0"),
        (
            ("simulate", BOTTLING, "--scenario", "{badscenario}", "--replications", 1, "--hours", 1),
            "scenario 'typo': machines[0].cycle_time_s: must be > 0",
        ),
        (("simulate", BOTTLING, "--hours", 1, "--warmup", 2), "--warmup must be shorter"),
        (("simulate", BOTTLING, "--start", "yesterday"), "--start: 'yesterday' is not an ISO 8601 time"),
        (("simulate", BOTTLING, "--initial", "{badinit}", "--hours", 1), "buffers.nowhere: unknown buffer"),
        (("simulate", BOTTLING, "--initial", "{badinit2}", "--hours", 1), "machines.filler.remaining_s: must be"),
        (("oee", "{events}"), "OEE needs each machine's ideal cycle time"),
        (("oee", "{events}", "--ideal", "press=fast"), "--ideal: expected MACHINE=SECONDS"),
        (("oee", "{events}", "--ideal", "press=60", "--from", 100, "--to", 50), "must be after --from"),
        (("oee", "{badevents}", "--ideal", "press=60"), "line 3: state: must be one of"),
        (("aas", BOTTLING, "--live", "{badlive}"), "unknown machine 'mixer'"),
        (("validate", "{deep}"), "deep.yaml is nested too deeply to read"),
        (("oee", "{farevents}", "--ideal", "press=60"), "line 3: time: 1e+300 s is past the year 9999"),
        (("aas", BOTTLING, "--base-id", ""), "--base-id '' is not a URN or URL"),
        (("aas", BOTTLING, "--base-id", "plant 2"), "--base-id 'plant 2' is not a URN or URL"),
        (("oee", "{deepevents}", "--ideal", "press=60"), "line 1: nested too deeply to read"),
        (("simulate", BOTTLING, "--initial", "{deepjson}", "--hours", 1), "deep.json is nested too deeply to read"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text(
        "name: l\nmachines:\n  - {name: a, operation: x, cycle_time_s: 1}\n"
        "  - {name: b, operation: y, cycle_time_s: 1}\n"
        "  - {name: c, operation: z, cycle_time_s: 0}\n"
    )
    (tmp_path / "s.yaml").write_text("name: typo\nmachines:\n  - {name: depalletiser, cycle_time_s: 0}\n")
    (tmp_path / "init.yaml").write_text("buffers: {nowhere: 3}\n")
    (tmp_path / "init2.yaml").write_text("machines: {filler: {state: down, remaining_s: soon}}\n")
    (tmp_path / "e.csv").write_text("machine,time,state\npress,0,running\n")
    (tmp_path / "bad.csv").write_text("machine,time,state\npress,0,running\npress,5,asleep\n")
    (tmp_path / "live.json").write_text('{"mixer": {"state": "running"}}')
    paths = {
        "bad": "bad.yaml",
        "badscenario": "s.yaml",
        "badinit": "init.yaml",
        "badinit2": "init2.yaml",
        "events": "e.csv",
        "badevents": "bad.csv",
        "badlive": "live.json",
        "deep": "deep.yaml",
        "farevents": "far.csv",
        "deepevents": "deep.jsonl",
        "deepjson": "deep.json",
    }
    (tmp_path / "far.csv").write_text("machine,time,state\npress,0,running\npress,1e300,down\n")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    args = [str(a).format(**{k: tmp_path / v for k, v in paths.items()}) if "{" in str(a) else a for a in args]
    r = run_process(*args) if args[0] == "simulate" and "--warmup" in args else run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("hours", ["inf", "nan", "1e300", "-1"])
def test_a_horizon_that_could_never_end_is_refused(hours):
    r = run("simulate", BOTTLING, "--hours", hours, "--replications", 1)
    assert r.returncode == 2 and "--hours" in r.stderr, (r.stdout, r.stderr)
