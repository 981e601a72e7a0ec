"""The simulation: reproducible seeds, parallel replications, start from a given state, shifts, rework and scrap,
scenarios, and its events accepted by the live twin's state machine (so its OEE is the live OEE code's)."""

from __future__ import annotations

from importlib.resources import files

import pytest

from linewatch.twin.events import rebuild
from linewatch.twin.experiments import compare, replication_seeds, run_replications
from linewatch.twin.model import line_from_dict, load_line, scenario_from_dict
from linewatch.twin.oee import compute_oee
from linewatch.twin.sim import InitialState, MachineStart, Simulation, simulate

BOTTLING = str(files("linewatch.twin") / "examples" / "bottling.yaml")


@pytest.fixture(scope="module")
def bottling():
    return load_line(BOTTLING)


@pytest.fixture(scope="module")
def day(bottling):
    """One simulated Monday of the bottling line (two shifts), with its events."""
    sim = Simulation(bottling, 24, seed=5)
    return sim, sim.run()


def test_events_are_what_a_live_twin_accepts_and_oee_is_shared(bottling, day):
    sim, res = day
    names = [m.name for m in bottling.machines]
    r = rebuild(sim.events, machines=names)
    assert not r.rejected and r.applied == len(sim.events) == res["events"]
    # parts counted per machine in events == parts the simulation counted
    for m in sim.machines:
        st = r.status[m.name]
        assert st.good + st.defective == m.total
    rep = compute_oee(sim.events, sim.t0, sim.t0 + sim.horizon, bottling)
    assert rep.line.oee == pytest.approx(res["oee"])
    assert [w[0] for w in rep.shifts] == ["early 2024-01-01", "late 2024-01-01"]
    # nothing starts outside the shifts (06:00-22:00; the run starts at midnight in the line's time zone)
    for e in sim.events:
        hour = (e.time - sim.t0) / 3600
        if e.state == "running":
            assert 6 <= hour < 22, e
    ins = rep.machines[names.index("inspector")]
    assert ins.quality == pytest.approx(1 - 0.015, abs=0.006)
    assert res["scrap"] > 0 and res["reworked"] > 0 and res["bottleneck"] == "filler"


def test_seeds_reproduce_and_workers_do_not_change_results(bottling):
    kw = {"start": "2024-01-01T06:00:00", "record": False}
    a = run_replications(bottling, 3, replications=3, seed=42, **kw)
    b = run_replications(bottling, 3, replications=3, seed=42, workers=2, **kw)
    assert a.seeds == b.seeds == replication_seeds(42, 3)
    assert [r["throughput_per_h"] for r in a.results] == [r["throughput_per_h"] for r in b.results]
    one = simulate(bottling, 3, seed=a.seeds[2], **kw)  # any replication alone
    assert one["throughput_per_h"] == a.results[2]["throughput_per_h"]
    assert len({r["throughput_per_h"] for r in a.results}) == 3
    s = a.stats["throughput_per_h"]
    assert s.n == 3 and s.low < s.mean < s.high


def test_start_from_a_given_state():
    line = line_from_dict(
        {
            "name": "two",
            "machines": [
                {"name": "a", "operation": "x", "cycle_time_s": 10},
                {"name": "b", "operation": "y", "cycle_time_s": 10},
            ],
            "buffers": [{"name": "q", "before": "y", "capacity": 50}],
        }
    )
    init = InitialState(
        machines={"b": MachineStart("down", remaining_s=1800, cause="motor"), "a": MachineStart("running", 4.0)},
        buffers={"q": 30},
    )
    sim = Simulation(line, 1, seed=1, initial=init)
    res = sim.run()
    first = {}
    for e in sim.events:
        first.setdefault(e.machine, e)
    assert first["b"].state == "down" and first["b"].cause == "motor"
    # b is down 30 min while a fills the buffer from 30: 30 + 1 (a's part in hand) + 179 more... capped at 50
    assert res["buffers"]["q"]["max"] == 50
    assert res["machines"]["b"]["down"] == pytest.approx(0.5)
    assert res["machines"]["a"]["blocked"] > 0.3
    # after the repair b works off the buffer at its own pace, 10 s a part: 179 done before the hour is up (the
    # one finishing at 3,600 s exactly is beyond the horizon)
    assert res["good"] == 179
    with pytest.raises(Exception, match="unknown machine"):
        Simulation(line, 1, initial=InitialState(machines={"zz": MachineStart("down", 10)})).run()


def test_initial_state_from_rebuilt_live_state(bottling, day):
    sim, _ = day
    at = sim.t0 + 10 * 3600
    status = rebuild(sim.events, at=at).status
    init = InitialState.from_status(bottling, status, at, buffers={"capper infeed": 10})
    res = Simulation(bottling, 2, seed=3, initial=init, start=at).run()
    assert res["good"] > 0


def test_scenarios_side_by_side(bottling):
    faster = scenario_from_dict({"name": "reliable filler", "machines": [{"name": "filler", "failures": []}]})
    worse = scenario_from_dict(
        {"name": "bad camera day", "inspections": [{"machine": "inspector", "defect_rate": 0.2}]}
    )
    base, fast, bad = compare(
        bottling, [faster, worse], 8, replications=2, seed=1, start="2024-01-01T06:00:00", record=False
    )
    assert fast.stats["machines.filler.down"].mean == 0 < base.stats["machines.filler.down"].mean
    assert bad.stats["scrap"].mean > 5 * base.stats["scrap"].mean
    assert base.seeds == fast.seeds == bad.seeds


def test_bad_runs_are_user_errors(bottling):
    from linewatch.errors import LinewatchError

    with pytest.raises(LinewatchError, match="horizon"):
        Simulation(bottling, 0)
    with pytest.raises(LinewatchError, match="warm-up"):
        Simulation(bottling, 1, warmup_h=2)
    with pytest.raises(LinewatchError, match="unknown buffer"):
        Simulation(bottling, 1, initial=InitialState(buffers={"nowhere": 3})).run()
