"""The line model file (errors by path, scenarios) and machine state events (the state machine, rebuilding, files)."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from linewatch.twin.events import (
    EventError,
    StateEvent,
    StateMachine,
    TransitionError,
    read_events,
    rebuild,
    write_events,
)
from linewatch.twin.model import TwinModelError, apply_scenario, load_line, parse_line, scenario_from_dict

BOTTLING = files("linewatch.twin") / "examples" / "bottling.yaml"


def bottling():
    return load_line(str(BOTTLING))


def test_bottling_example_loads():
    line = bottling()
    assert [m.name for m in line.machines] == ["depalletiser", "filler", "capper", "labeller", "inspector", "packer"]
    assert line.inspection_at("inspector").station == "bottle-camera"
    assert line.ideal_cycle_s("filler", "water") == 5.0 and line.ideal_cycle_s("filler", "cola") == 5.6
    assert line.machine("filler").failures[1].ttr_s.mean_value == pytest.approx(25 * 60)
    assert line.buffer_before("pack").capacity == 60


def doc(**over):
    d = {
        "name": "l",
        "machines": [
            {"name": "a", "operation": "x", "cycle_time_s": 5},
            {"name": "b", "operation": "y", "cycle_time_s": 5},
            {"name": "c", "operation": "z", "cycle_time_s": 5},
        ],
    }
    d.update(over)
    return d


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["machines"][2].update(cycle_time_s=0), "machines[2].cycle_time_s: must be > 0"),
        (
            lambda d: d["machines"][1].update(cycle_time_s={"dist": "normal", "mean": 5}),
            "machines[1].cycle_time_s: normal needs sd",
        ),
        (lambda d: d["machines"][0].update(cycle_time_s={"dist": "poisson"}), "machines[0].cycle_time_s: dist must"),
        (lambda d: d["machines"][0].update(colour="red"), "machines[0].colour: unknown field"),
        (
            lambda d: d["machines"][1].update(failures={"mtbf_h": -1, "mttr_min": 5}),
            "machines[1].failures[0].mtbf_h: must be > 0",
        ),
        (
            lambda d: d["machines"][1].update(failures=[{"mttr_min": 5}]),
            "machines[1].failures[0]: give exactly one of mtbf_h and time_to_failure_h",
        ),
        (
            lambda d: d.update(buffers=[{"name": "q", "before": "w", "capacity": 3}]),
            "buffers[0].before: unknown operation 'w'",
        ),
        (
            lambda d: d.update(buffers=[{"name": "q", "before": "x", "capacity": 0}]),
            "buffers[0].capacity: must be >= 1",
        ),
        (
            lambda d: d.update(products=[{"name": "p", "routing": ["x", "lable"]}]),
            "products[0].routing[1]: unknown operation 'lable'",
        ),
        (lambda d: d["machines"][2].update(name="a"), "machines[2].name: 'a' is used twice"),
        (
            lambda d: d.update(inspections=[{"machine": "c", "station": "cam", "defect_rate": 1.5}]),
            "inspections[0].defect_rate: must be <= 1",
        ),
        (
            lambda d: d.update(
                inspections=[{"machine": "c", "station": "cam", "defect_rate": 0.1, "rework_fraction": 0.5}]
            ),
            "inspections[0].rework_to: is required",
        ),
        (
            lambda d: d.update(shifts=[{"name": "s", "start": "25:00", "end": "06:00"}]),
            "shifts[0].start: must be HH:MM",
        ),
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone: unknown time zone"),
        (lambda d: d.pop("machines"), "machines: is required"),
    ],
)
def test_errors_name_the_field(change, message):
    d = doc()
    change(d)
    with pytest.raises(TwinModelError) as e:
        parse_line(json.dumps(d), "line.json")
    assert message in str(e.value), str(e.value)
    assert str(e.value).startswith("line.json: ")


def test_unreadable_files(tmp_path):
    with pytest.raises(TwinModelError, match="not valid YAML or JSON at line 2"):
        parse_line("name: x\n  - : [\n", "l.yaml")
    with pytest.raises(TwinModelError, match="no such file"):
        load_line(tmp_path / "missing.yaml")
    with pytest.raises(TwinModelError, match="expected a mapping"):
        parse_line("[1, 2]", "l.yaml")


def test_scenarios_override_the_model():
    line = bottling()
    s = scenario_from_dict(
        {
            "name": "what if",
            "machines": [
                {"name": "capper 2", "like": "capper"},
                {"name": "filler", "failures": [{"mtbf_h": 8, "mttr_min": 8}]},
            ],
            "buffers": [{"name": "capper infeed", "capacity": 5}],
            "inspections": [{"machine": "inspector", "defect_rate": 0.05}],
            "mix": {"cola": 0.2, "water": 0.8},
        }
    )
    new = apply_scenario(line, s)
    assert [m.name for m in new.machines_for("cap")] == ["capper", "capper 2"]
    assert new.machine("filler").failures[0].mtbf_h == 8
    assert new.buffer_before("cap").capacity == 5
    assert new.inspection_at("inspector").defect_rate == 0.05 and new.inspection_at("inspector").rework_fraction == 0.4
    assert [p.mix for p in new.products] == [0.2, 0.8]
    assert line.buffer_before("cap").capacity == 20  # the base is untouched
    # removing a machine leaves its buffer and inspection behind: the merged model is checked as a whole
    with pytest.raises(TwinModelError, match=r"scenario 'no camera': buffers\[4\].before: unknown operation 'inspect'"):
        apply_scenario(
            line, scenario_from_dict({"name": "no camera", "machines": [{"name": "inspector", "remove": True}]})
        )
    with pytest.raises(TwinModelError, match="scenario 'bad': machines\\[1\\].cycle_time_s: must be > 0"):
        apply_scenario(
            line,
            scenario_from_dict(
                {
                    "name": "bad",
                    "machines": [{"name": "filler", "operation": "fill", "cycle_time_s": 0, "operations": []}],
                }
            ),
        )
    with pytest.raises(TwinModelError, match="mix.beer: unknown product"):
        apply_scenario(line, scenario_from_dict({"name": "beer", "mix": {"beer": 1}}))


# -- events -------------------------------------------------------------------------------------------------------
def ev(t, state, **kw):
    return StateEvent("m", float(t), state, **kw)


def test_state_machine_rejects_impossible_transitions_and_changes_nothing():
    sm = StateMachine(frozenset({"m"}))
    sm.apply(ev(0, "starved"))
    cases = [
        (ev(1, "blocked"), "blocked right after starved"),
        (ev(1, "running", good=3), "parts counted while starved"),
        (ev(1, "starved"), "no change: already starved"),
        (StateEvent("x", 1.0, "running"), "unknown machine 'x'"),
    ]
    for e, reason in cases:
        with pytest.raises(TransitionError) as err:
            sm.apply(e)
        assert reason in err.value.reason
    assert sm.status["m"].state == "starved" and sm.status["m"].good == 0
    sm.apply(ev(5, "running", product="cola"))
    sm.apply(ev(9, "running", good=2, product="water"))  # a product change reporting counts
    sm.apply(ev(10, "blocked", good=1))
    with pytest.raises(TransitionError, match="out of order"):
        sm.apply(ev(8, "running"))
    st = sm.status["m"]
    assert (st.state, st.since, st.good, st.product) == ("blocked", 10.0, 3, "water")
    with pytest.raises(TransitionError, match="first event must carry no counts"):
        StateMachine().apply(ev(0, "running", good=1))


def test_rebuild_at_any_time():
    events = [
        ev(0, "running"),
        ev(10, "down", cause="jam", good=4),
        ev(20, "running"),
        ev(30, "idle", good=5),
        ev(15, "blocked"),
        ev(40, "running", good=1),
    ]  # given out of order: replayed by time
    r = rebuild(events, at=12)
    assert r.status["m"].state == "down" and r.status["m"].cause == "jam" and r.status["m"].good == 4
    r = rebuild(events, at=17)
    assert r.status["m"].state == "blocked"  # down -> blocked: a machine can break while holding a part
    r = rebuild(events)
    assert r.applied == 5 and r.status["m"].good == 9 and r.status["m"].state == "idle"
    assert len(r.rejected) == 1 and "parts counted while idle" in r.rejected[0][1]


def test_event_files_round_trip_and_bad_rows(tmp_path):
    events = [ev(0, "running", product="cola"), ev(60, "down", cause="jam", good=3, defective=1, reworked=1)]
    for name in ("e.csv", "e.jsonl"):
        write_events(events, tmp_path / name)
        assert read_events(tmp_path / name) == events
    (tmp_path / "iso.csv").write_text("machine,time,state\nm,2024-03-04T08:00:00Z,running\n")
    assert read_events(tmp_path / "iso.csv")[0].time == 1709539200.0
    (tmp_path / "bad.csv").write_text("machine,time,state\nm,0,running\nm,10,sleeping\n")
    with pytest.raises(EventError, match="bad.csv line 3: state: must be one of running"):
        read_events(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"machine": "m", "time": 0, "state": "down", "good": -1}\n')
    with pytest.raises(EventError, match="line 1: good: must be >= 0"):
        read_events(tmp_path / "bad.jsonl")
    (tmp_path / "nohead.csv").write_text("a,b\n1,2\n")
    with pytest.raises(EventError, match="header lacks machine, time, state \\(it has a, b;"):
        read_events(tmp_path / "nohead.csv")
    (tmp_path / "r.jsonl").write_text('{"machine": "m", "time": 0, "state": "down", "defective": 1, "reworked": 2}\n')
    with pytest.raises(EventError, match="reworked: cannot exceed defective"):
        read_events(tmp_path / "r.jsonl")


def test_shift_calendar_overnight_and_daylight_saving():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from linewatch.twin.calendar import Calendar
    from linewatch.twin.model import line_from_dict

    line = line_from_dict(
        {
            "name": "l",
            "timezone": "Europe/Berlin",
            "shifts": [{"name": "night", "start": "22:00", "end": "06:00", "days": ["sat"]}],
            "machines": [{"name": "a", "operation": "x", "cycle_time_s": 1}],
        }
    )
    tz = ZoneInfo("Europe/Berlin")
    # the night from Saturday 30 March 2024 into Sunday, when clocks go forward: 7 hours, not 8
    t1 = datetime(2024, 3, 30, 12, tzinfo=tz).timestamp()
    t2 = datetime(2024, 3, 31, 12, tzinfo=tz).timestamp()
    (w,) = Calendar(line).windows(t1, t2)
    assert w.shift == "night 2024-03-30" and w.end - w.start == 7 * 3600
    assert Calendar(line).open_intervals(t1, w.start + 3600) == [(w.start, w.start + 3600)]
