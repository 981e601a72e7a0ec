"""The digital twin in the service: line models, events (HTTP, the service's own hooks), live and past state, a
restart, OEE over the stored history, simulation jobs, replanning after a machine goes down, roles, WebSocket."""

from __future__ import annotations

import datetime as dt
import time

import pytest

pytest.importorskip("simpy")

# a small line: a press feeding a camera station through a buffer; no shifts (always planned)
LINE = {
    "name": "press line",
    "machines": [
        {
            "name": "press",
            "operation": "press",
            "cycle_time_s": 10,
            "failures": [{"cause": "jam", "mtbf_h": 2, "mttr_min": 5}],
        },
        {"name": "camera", "operation": "inspect", "cycle_time_s": 8},
    ],
    "buffers": [{"name": "conveyor", "before": "inspect", "capacity": 5}],
    "inspections": [{"machine": "camera", "station": "cam-1", "defect_rate": 0.1}],
}
T0 = 1_767_261_600.0  # 2026-01-01T10:00:00Z


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def _put(api, model=LINE, line="L1"):
    r = api.client.put(f"/api/v1/lines/{line}/model", json=model, headers=api.user("engineer"))
    assert r.status_code == 200, r.text
    return r.json()


def _post(api, events, line="L1", role="operator"):
    return api.client.post(f"/api/v1/lines/{line}/events", json=events, headers=api.user(role))


def _wait(api, job_id: int) -> dict:
    for _ in range(1200):
        job = api.client.get(f"/api/v1/jobs/{job_id}", headers=api.user("viewer")).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_model_crud_validation_and_roles(api):
    c, eng, viewer = api.client, api.user("engineer"), api.user("viewer")
    bad = {**LINE, "machines": [{**LINE["machines"][0], "cycle_time_s": -1}, {"name": "camera"}]}
    r = c.put("/api/v1/lines/L1/model", json=bad, headers=eng)
    assert r.status_code == 422
    paths = {e["path"]: e["message"] for e in r.json()["detail"]}
    from linewatch.twin.model import line_errors

    assert paths == dict(line_errors(bad))  # every problem, named as the engine names it
    assert paths["machines[0].cycle_time_s"].startswith("must be >")
    assert "machines[1].operation" in paths
    r = c.put(
        "/api/v1/lines/L1/model",
        json={**LINE, "buffers": [{"name": "b", "before": "weld", "capacity": 1}]},
        headers=eng,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "buffers[0].before"
    assert c.put("/api/v1/lines/L1/model", json=LINE, headers=viewer).status_code == 403
    assert c.get("/api/v1/lines/L1/model", headers=viewer).status_code == 404  # the line does not exist yet

    first = _put(api)
    assert first["version"] == 1 and first["model"] == LINE and first["line"] == "L1"
    assert "L1" in [ln["name"] for ln in c.get("/api/v1/lines", headers=viewer).json()]  # the line was created
    second = _put(api, {**LINE, "description": "v2"})
    assert second["version"] == 2
    got = c.get("/api/v1/lines/L1/model", headers=viewer).json()
    assert got["version"] == 2 and got["model"]["description"] == "v2"
    assert c.delete("/api/v1/lines/L1/model", headers=viewer).status_code == 403
    assert c.delete("/api/v1/lines/L1/model", headers=eng).status_code == 204
    r = c.get("/api/v1/lines/L1/model", headers=viewer)
    assert r.status_code == 404 and "no twin model" in r.json()["detail"]
    assert c.get("/api/v1/lines/L1/state", headers=viewer).status_code == 404
    assert c.get("/api/v1/lines/nope/state", headers=viewer).json() == {"detail": "unknown line 'nope'"}
    assert c.post("/api/v1/lines/L1/simulations", json={}, headers=viewer).status_code == 403


def test_events_are_accepted_or_refused_whole_and_refusals_are_dead_letters(api):
    _put(api)
    c, viewer = api.client, api.user("viewer")
    assert _post(api, {"machine": "press", "state": "running"}, role="viewer").status_code == 403
    r = _post(
        api,
        [
            {"machine": "press", "state": "running", "ts": _iso(T0), "job": "bracket"},
            {"machine": "welder", "state": "running", "ts": T0 + 1},  # unknown machine
            {"machine": "camera", "state": "starved", "ts": T0 + 1},
            {"machine": "camera", "state": "blocked", "ts": T0 + 2},  # holds no part: cannot be blocked
            {"machine": "press", "state": "down", "ts": T0 + 60, "reason": "jam", "good": 6},
            {"machine": "press", "state": "running", "ts": T0 + 30},  # before the press's last event
            {"machine": "press", "state": "exploded", "ts": T0 + 70},
            {"buffer": "conveyor", "level": 3, "ts": T0 + 60},
            {"buffer": "conveyor", "level": 9, "ts": T0 + 61},  # over capacity
            {"machine": "camera", "state": "idle", "ts": T0 + 3, "reason": "nul\u0000in text"},
        ],
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 4
    reasons = dict((x["index"], x["reason"]) for x in body["rejected"])
    assert set(reasons) == {1, 3, 5, 6, 8, 9}
    assert reasons[1] == "unknown machine 'welder'"
    assert "blocked right after starved" in reasons[3]
    assert reasons[5].startswith("out of order")
    assert "state: must be one of" in reasons[6]
    assert "capacity 5" in reasons[8]
    assert reasons[9].startswith("reason: must be one line of text")
    dead = c.get("/api/v1/dead-letters", headers=api.user("engineer")).json()
    assert sorted(d["reason"] for d in dead) == sorted(f"twin: {x}" for x in reasons.values())
    assert all(d["source"] == "http" for d in dead)

    state = c.get("/api/v1/lines/L1/state", headers=viewer).json()
    press = next(m for m in state["machines"] if m["machine"] == "press")
    assert press["state"] == "down" and press["reason"] == "jam" and press["good"] == 6 and press["job"] == "bracket"
    assert press["since"].startswith("2026-01-01T10:01:00")
    assert state["buffers"] == [{"buffer": "conveyor", "level": 3, "capacity": 5}]

    page = c.get("/api/v1/lines/L1/events?limit=3", headers=viewer).json()
    assert [e["machine"] for e in page["items"]] == ["press", "camera", "press"] and page["next_cursor"]
    rest = c.get(f"/api/v1/lines/L1/events?limit=3&cursor={page['next_cursor']}", headers=viewer).json()
    assert [e["kind"] for e in rest["items"]] == ["buffer"] and rest["next_cursor"] is None
    assert page["items"][2]["data"] == {"good": 6} and page["items"][2]["source"] == "http"
    only = c.get(f"/api/v1/lines/L1/events?machine=camera&from={_iso(T0)}&to={_iso(T0 + 2)}", headers=viewer).json()
    assert [e["state"] for e in only["items"]] == ["starved"]
    assert _post(api, {"machine": "press", "state": "running"}, line="L9").status_code == 404


def _state_without_at(api, at: str | None = None) -> dict:
    url = "/api/v1/lines/L1/state" + (f"?at={at}" if at else "")
    s = api.client.get(url, headers=api.user("viewer")).json()
    s.pop("at")
    return s


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_past_state_is_rebuilt_and_a_restart_rebuilds_the_live_state(api):
    from linewatch.services.twin import TwinService

    _put(api)
    t = T0
    _post(api, [{"machine": "press", "state": "running", "ts": t}, {"machine": "camera", "state": "starved", "ts": t}])
    _post(
        api,
        [
            {"machine": "camera", "state": "running", "ts": t + 12, "job": "bracket"},
            {"buffer": "conveyor", "level": 2, "ts": t + 12},
        ],
    )
    live_then = _state_without_at(api)
    _post(
        api,
        [
            {"machine": "camera", "state": "starved", "ts": t + 20, "good": 1},
            {"machine": "press", "state": "down", "ts": t + 30, "reason": "jam", "good": 2},
        ],
    )
    _post(api, {"buffer": "conveyor", "level": 0, "ts": t + 31})
    assert _state_without_at(api, _iso(t + 15)) == live_then
    live_now = _state_without_at(api)
    assert live_now != live_then
    assert _state_without_at(api, _iso(t + 100)) == live_now

    restarted = TwinService(api.ctx)  # what a restarted service builds from the stored events
    restarted.start()
    try:
        again = restarted.state("L1")
        again.pop("at")
        assert again == live_now
    finally:
        restarted.stop()


def test_oee_over_the_stored_history_is_the_engines_and_a_hand_worked_example(api):
    from linewatch.twin.events import StateEvent
    from linewatch.twin.model import line_from_dict
    from linewatch.twin.oee import compute_oee

    _put(api)
    events = [
        {"machine": "press", "state": "running", "ts": T0},
        {"machine": "press", "state": "down", "ts": T0 + 3000, "reason": "jam", "good": 270, "defective": 30},
        {"machine": "press", "state": "running", "ts": T0 + 3600},
        {"machine": "camera", "state": "starved", "ts": T0},
        {"machine": "camera", "state": "running", "ts": T0 + 1800},
        {"machine": "camera", "state": "starved", "ts": T0 + 3600, "good": 200},
    ]
    assert _post(api, events).json()["accepted"] == 6
    r = api.client.get(f"/api/v1/lines/L1/oee?from={_iso(T0)}&to={_iso(T0 + 3600)}", headers=api.user("viewer"))
    assert r.status_code == 200, r.text
    got = r.json()
    press = next(m for m in got["machines"] if m["machine"] == "press")
    # by hand: planned busy 3600 s, running 3000 s, 300 parts of 10 s ideal, 270 good
    assert press["availability"] == pytest.approx(3000 / 3600, abs=1e-6)
    assert press["performance"] == pytest.approx(1.0)
    assert press["quality"] == pytest.approx(0.9)
    assert press["oee"] == pytest.approx(0.75, abs=1e-6)
    assert press["losses"]["downtime_s"] == {"jam": 600.0}
    assert press["losses"]["scrap_loss_s"] == pytest.approx(300.0)

    evs = [
        StateEvent(e["machine"], e["ts"], e["state"], e.get("reason"), e.get("good", 0), e.get("defective", 0))
        for e in events
    ]
    lib = compute_oee(evs, T0, T0 + 3600, line_from_dict(LINE)).to_json()
    assert got["line"] == lib["line"]
    assert [{k: v for k, v in m.items() if k != "machine"} for m in got["machines"]] == lib["machines"]
    assert got["shifts"] == [] and got["from"] == _iso(T0)
    bad = api.client.get(f"/api/v1/lines/L1/oee?from={_iso(T0)}&to={_iso(T0 - 1)}", headers=api.user("viewer"))
    assert bad.status_code == 400 and "after" in bad.json()["detail"]


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_simulation_job_from_the_live_state_with_a_scenario(api):
    api.ctx.settings.twin_simulation_workers = 1
    c, eng = api.client, api.user("engineer")
    _put(api)
    now = time.time()
    _post(
        api,
        [
            {"machine": "press", "state": "down", "ts": now - 60, "reason": "jam"},
            {"buffer": "conveyor", "level": 4, "ts": now - 60},
        ],
    )
    bad = {
        "hours": 1,
        "replications": 2,
        "scenarios": [{"name": "x", "overrides": {"machines": [{"name": "press", "cycle_time_s": -3}]}}],
    }
    r = c.post("/api/v1/lines/L1/simulations", json=bad, headers=eng)
    assert r.status_code == 422 and r.json()["detail"][0]["path"] == "scenarios[0].overrides"
    r = c.post("/api/v1/lines/L1/simulations", json={"schedule_id": 99}, headers=eng)
    assert r.status_code == 404 and r.json()["detail"] == "no schedule 99"
    req = {
        "hours": 2,
        "replications": 3,
        "seed": 7,
        "from_live": True,
        "scenarios": [{"name": "faster press", "overrides": {"machines": [{"name": "press", "cycle_time_s": 6}]}}],
    }
    r = c.post("/api/v1/lines/L1/simulations", json=req, headers=eng)
    assert r.status_code == 202, r.text
    sim = r.json()
    assert _wait(api, sim["job_id"])["status"] == "succeeded"
    got = c.get(f"/api/v1/lines/L1/simulations/{sim['id']}", headers=api.user("viewer")).json()
    assert got["status"] == "succeeded" and got["request"]["scenarios"][0]["name"] == "faster press"
    res = got["result"]
    assert res["from_live"] is True and res["model_version"] == 1
    base, faster = res["scenarios"]
    assert (base["scenario"], faster["scenario"]) == ("base", "faster press")
    tp_base, tp_fast = base["stats"]["throughput_per_h"], faster["stats"]["throughput_per_h"]
    assert tp_base["n"] == 3 and tp_base["ci_low"] <= tp_base["mean"] <= tp_base["ci_high"]
    assert tp_fast["mean"] > tp_base["mean"]  # the press (10 s) is the bottleneck; at 6 s the camera (8 s) is
    assert max(base["bottleneck"], key=base["bottleneck"].get) == "press"
    assert "machines.press.utilisation" in base["stats"] and "buffers.conveyor.mean" in base["stats"]
    # started from the live state: the press is down at the start, so the first minutes make less than empty
    from linewatch.twin.model import line_from_dict
    from linewatch.twin.sim import simulate

    assert (
        base["stats"]["machines.press.down"]["mean"]
        > simulate(line_from_dict(LINE), 2, seed=1)["machines"]["press"]["down"] - 1
    )
    listed = c.get("/api/v1/lines/L1/simulations", headers=api.user("viewer")).json()
    assert [s["id"] for s in listed] == [sim["id"]]
    assert c.get(f"/api/v1/lines/L2/simulations/{sim['id']}", headers=eng).status_code == 404


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_the_services_own_events_count_parts_and_change_health(api):
    from linewatch.core.events import AlertChanged, InspectionStored, MaintenancePredicted
    from linewatch.services import machines
    from linewatch.store.tables import Alert, Machine

    _put(api)
    bus = api.ctx.bus
    _post(api, {"machine": "camera", "state": "running", "ts": time.time() - 5})
    for verdict in ("good", "good", "anomalous"):
        bus.publish(
            InspectionStored(inspection={"id": 1, "station": "cam-1", "verdict": verdict, "duplicate_of": None})
        )
    bus.publish(InspectionStored(inspection={"id": 2, "station": "cam-1", "verdict": "good", "duplicate_of": 1}))
    bus.publish(InspectionStored(inspection={"id": 3, "station": "other", "verdict": "good", "duplicate_of": None}))
    cam = next(
        m
        for m in api.client.get("/api/v1/lines/L1/state", headers=api.user("viewer")).json()["machines"]
        if m["machine"] == "camera"
    )
    assert (cam["good"], cam["defective"], cam["state"]) == (2, 1, "running")

    spec = machines.ImportSpec.model_validate(
        {"lines": [{"name": "L1", "machines": [{"name": "press", "sensors": [{"name": "t"}]}]}]}
    )
    with api.ctx.sessions() as s:
        machines.import_spec(s, bus, spec)
    now = dt.datetime.now(dt.UTC)
    with api.ctx.sessions() as s, s.begin():
        mid = s.query(Machine).filter_by(name="press").one().id
        s.add(Alert(machine_id=mid, opened_at=now, last_at=now, peak_score=3.0))
    bus.publish(AlertChanged(alert={"id": 1, "machine": "press"}, change="opened"))
    bus.publish(
        MaintenancePredicted(
            machine="press", time=now.timestamp(), cycle=12, cycle_s=3600, rul=40.0, rul_low=30.0, rul_high=55.0
        )
    )
    press = next(
        m
        for m in api.client.get("/api/v1/lines/L1/state", headers=api.user("viewer")).json()["machines"]
        if m["machine"] == "press"
    )
    assert press["health"] == {
        "open_alerts": 1,
        "rul": 40.0,
        "rul_low": 30.0,
        "rul_high": 55.0,
        "failure_probability": None,
    }
    kinds = [
        (e["kind"], e["source"])
        for e in api.client.get("/api/v1/lines/L1/events", headers=api.user("viewer")).json()["items"]
    ]
    assert (
        kinds.count(("state", "inspection")) == 3
        and ("health", "alert") in kinds
        and ("health", "maintenance") in kinds
    )


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_websocket_receives_twin_events(api):
    _put(api)
    token = api.user("viewer")["Authorization"].split()[1]
    with api.client.websocket_connect(f"/api/v1/events?token={token}") as ws:
        assert ws.receive_json()["type"] == "hello"
        _post(api, {"machine": "press", "state": "running", "ts": T0, "job": "bracket"})
        ev = ws.receive_json()
        while ev["type"] != "twin_event":
            ev = ws.receive_json()
        assert ev["line"] == "L1" and ev["machine"] == "press" and ev["state"] == "running" and ev["job"] == "bracket"
        assert ev["kind"] == "state" and ev["source"] == "http" and ev["ts"].startswith("2026-01-01T10:00:00")
        assert isinstance(ev["id"], int)
    aas = api.client.get("/api/v1/lines/L1/aas", headers=api.user("viewer"))
    assert aas.status_code == 200
    shells = aas.json()["assetAdministrationShells"]
    assert len(shells) == 3  # a shell per machine and one for the line
    assert "running" in aas.text and "bracket" in aas.text  # the press's live state in its OperationalData


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_simulation_of_a_schedules_plan_from_the_live_state(api):
    api.ctx.settings.twin_simulation_workers = 1
    c, eng = api.client, api.user("engineer")
    _put(api)
    jobs = [
        {"name": f"J{j}", "due": 13, "operations": [{"machine": 0, "duration": 5}, {"machine": 1, "duration": 3}]}
        for j in range(3)
    ]
    sid = c.post(
        "/api/v1/schedules",
        json={"name": "shift plan", "instance": {"machines": ["press", "camera"], "jobs": jobs}},
        headers=eng,
    ).json()["id"]
    r = c.post("/api/v1/lines/L1/simulations", json={"schedule_id": sid}, headers=eng)
    assert r.status_code == 409 and r.json()["detail"].startswith(f"schedule {sid} has no plan yet")
    solve = c.post(f"/api/v1/schedules/{sid}/solve", json={"solver": "rules"}, headers=eng).json()
    assert _wait(api, solve["id"])["status"] == "succeeded"
    other = c.post(
        "/api/v1/schedules",
        json={"name": "welding", "instance": {"machines": ["press", "welder"], "jobs": jobs}},
        headers=eng,
    ).json()["id"]
    assert _wait(api, c.post(f"/api/v1/schedules/{other}/solve", json={"solver": "rules"}, headers=eng).json()["id"])
    r = c.post("/api/v1/lines/L1/simulations", json={"schedule_id": other}, headers=eng)
    assert r.status_code == 409 and "'welder' is not in the line model" in r.json()["detail"]
    bad = {
        "schedule_id": sid,
        "scenarios": [
            {
                "name": "no camera",
                "overrides": {
                    "machines": [
                        {"name": "camera", "remove": True},
                        {"name": "cam2", "operation": "inspect", "cycle_time_s": 8},
                    ],
                    "inspections": [{"machine": "camera", "remove": True}],
                },
            }
        ],
    }
    r = c.post("/api/v1/lines/L1/simulations", json=bad, headers=eng)
    assert r.status_code == 422 and "'camera' is not in the line model" in r.json()["detail"][0]["message"]

    # the press is down now (a 5 min repair, 1 min gone): the plan (press 5 + camera 3 per job, minutes) starts late
    _post(api, [{"machine": "press", "state": "down", "ts": time.time() - 60, "reason": "jam"}])
    req = {
        "replications": 4,
        "seed": 3,
        "from_live": True,
        "schedule_id": sid,
        "scenarios": [{"name": "faster press", "overrides": {"machines": [{"name": "press", "cycle_time_s": 6}]}}],
    }
    r = c.post("/api/v1/lines/L1/simulations", json=req, headers=eng)
    assert r.status_code == 202, r.text
    assert _wait(api, r.json()["job_id"])["status"] == "succeeded"
    res = c.get(f"/api/v1/lines/L1/simulations/{r.json()['id']}", headers=api.user("viewer")).json()["result"]
    plan = res["plan"]
    assert plan["schedule_id"] == sid and plan["schedule"] == "shift plan" and plan["time_unit_s"] == 60
    assert plan["planned"]["makespan"] == 18 and plan["planned"]["late_jobs"] == 1 and plan["planned"]["late"] == ["J2"]
    mk = plan["simulated"]["makespan"]
    assert mk["n"] == 4 and mk["ci_low"] <= mk["mean"] <= mk["ci_high"]
    assert mk["mean"] > 18 + 3.5  # the press's first operation waits for the repair (about 4 more minutes)
    assert plan["simulated"]["late_jobs"]["mean"] >= 1 and plan["late_share"] == 1
    assert [j["job"] for j in plan["jobs"]] == ["J0", "J1", "J2"] and plan["jobs"][0]["lateness"]["mean"] > 3.5
    base, faster = res["scenarios"]
    assert (base["scenario"], faster["scenario"]) == ("base", "faster press") and res["from_live"] is True
    assert base["stats"]["makespan"] == mk and "machines.press.utilisation" in base["stats"]
    assert base["planned"]["makespan"] == faster["planned"]["makespan"] == 18


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_a_machine_of_the_active_plan_going_down_starts_a_replan(api):
    pytest.importorskip("ortools")
    c, eng = api.client, api.user("engineer")
    _put(api)
    inst = {
        "machines": ["press", "camera"],
        "jobs": [{"operations": [{"machine": 0, "duration": 5}, {"machine": 1, "duration": 3}]} for _ in range(3)],
    }
    sid = c.post("/api/v1/schedules", json={"name": "shift plan", "instance": inst}, headers=eng).json()["id"]
    assert (
        _wait(api, c.post(f"/api/v1/schedules/{sid}/solve", json={"solver": "rules"}, headers=eng).json()["id"])[
            "status"
        ]
        == "succeeded"
    )
    c.post(f"/api/v1/schedules/{sid}/activate", headers=eng)
    now = time.time()
    _post(
        api,
        [
            {"machine": "press", "state": "running", "ts": now - 10},
            {"machine": "press", "state": "down", "ts": now - 5, "reason": "jam"},
        ],
    )
    assert len(c.get("/api/v1/schedules", headers=eng).json()) == 1  # off by default
    api.ctx.settings.replan_on_machine_down = True
    _post(
        api,
        [
            {"machine": "press", "state": "running", "ts": now - 4},
            {"machine": "press", "state": "down", "ts": now - 3, "reason": "jam"},
        ],
    )
    _post(
        api, {"machine": "press", "state": "down", "ts": now - 2, "reason": "another jam"}
    )  # still down: no second replan
    listed = c.get("/api/v1/schedules", headers=eng).json()
    assert len(listed) == 2
    child = c.get(f"/api/v1/schedules/{listed[0]['id']}", headers=eng).json()
    assert (
        child["parent_id"] == sid and child["event"]["type"] == "machine_down" and child["event"]["machine"] == "press"
    )
    done = _wait(api, child["job_id"])
    assert done["status"] == "succeeded", done["error"]


def test_state_messages_still_queued_when_the_service_stops_are_handled(api):
    """Stopping the service wakes the loop that applies the broker's state messages instead of leaving it to its
    next poll; messages queued at that moment are still applied and acknowledged, never dropped by the wake-up."""
    import json

    from linewatch.store.tables import TwinEvent

    _put(api)
    inbox, acked = api.ctx.twin_inbox, []
    prefix = api.ctx.settings.mqtt_topic_prefix.rstrip("/")
    for k in range(30):
        state = {"state": "running" if k % 2 == 0 else "idle", "time": T0 + k}
        inbox.submit(f"{prefix}/L1/press/state", json.dumps(state).encode(), lambda k=k: acked.append(k))
    inbox.stop()
    assert not inbox._thread.is_alive()
    assert acked == list(range(30))
    with api.ctx.sessions() as s:
        assert s.query(TwinEvent).filter(TwinEvent.machine == "press").count() == 30
