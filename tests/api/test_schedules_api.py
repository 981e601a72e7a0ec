"""Schedules in the service: instances as resources, solving and replanning as jobs, the active plan, roles."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("ortools")

FT06 = """# ft06 (Fisher and Thompson), 6 jobs x 6 machines, optimum 55
6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
"""


def _wait(api, job_id: int, h: dict) -> dict:
    for _ in range(1200):
        job = api.client.get(f"/api/v1/jobs/{job_id}", headers=h).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_solve_replan_activate(api):
    eng, viewer = api.user("engineer"), api.user("viewer")
    c = api.client
    assert c.post("/api/v1/schedules", json={"name": "ft06", "text": FT06}, headers=viewer).status_code == 403
    r = c.post("/api/v1/schedules", json={"name": "ft06", "text": FT06}, headers=eng)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    bad = c.post(f"/api/v1/schedules/{sid}/solve", json={"params": {"time_limit": -1}}, headers=eng)
    assert bad.status_code == 400
    job = c.post(f"/api/v1/schedules/{sid}/solve", json={"params": {"time_limit": 10, "workers": 1}}, headers=eng)
    assert job.status_code == 202, job.text
    done = _wait(api, job.json()["id"], eng)
    assert done["status"] == "succeeded", done
    got = c.get(f"/api/v1/schedules/{sid}", headers=viewer).json()
    assert got["status"] == "solved" and got["summary"]["makespan"] == 55 and got["summary"]["status"] == "optimal"
    assert len(got["plan"]["operations"]) == 36
    assert c.get("/api/v1/schedules/active", headers=viewer).status_code == 404
    act = c.post(f"/api/v1/schedules/{sid}/activate", headers=eng)
    assert act.status_code == 200 and act.json()["active"] is True
    assert c.get("/api/v1/schedules/active", headers=viewer).json()["id"] == sid

    # machine 2 goes down at t=10 for 20 units: a new schedule repairs the plan and says what changed
    ev = {"type": "machine_down", "machine": 2, "time": 10, "until": 30}
    r = c.post(f"/api/v1/schedules/{sid}/replan", json={"event": ev, "params": {"time_limit": 3}}, headers=eng)
    assert r.status_code == 202, r.text
    done = _wait(api, r.json()["id"], eng)
    assert done["status"] == "succeeded", done
    child = c.get(f"/api/v1/schedules/{done['result']['schedule_id']}", headers=viewer).json()
    assert child["parent_id"] == sid and child["event"] == ev and child["status"] == "solved"
    assert child["summary"]["makespan"] >= 55 and "shifted_operations" in child["changes"]
    for op in child["plan"]["operations"]:  # nothing runs on machine 2 while it is down
        if op["machine"] == 2:
            assert op["end"] <= 10 or op["start"] >= 30
    c.post(f"/api/v1/schedules/{child['id']}/activate", headers=eng)
    listed = c.get("/api/v1/schedules", headers=viewer).json()
    assert [s["active"] for s in listed] == [True, False]


def test_bad_instances_and_events_say_what_is_wrong(api):
    eng = api.user("engineer")
    c = api.client
    r = c.post(
        "/api/v1/schedules",
        json={"name": "x", "instance": {"machines": 2, "jobs": [{"operations": [{"machine": 5, "duration": 3}]}]}},
        headers=eng,
    )
    assert r.status_code == 409 and "machine" in r.json()["detail"]
    r = c.post("/api/v1/schedules", json={"name": "x", "text": "2 2\n0 -3 1 4\n1 2 0 2\n"}, headers=eng)
    assert r.status_code == 409
    r = c.post("/api/v1/schedules", json={"name": "x"}, headers=eng)
    assert r.status_code == 409
    sid = c.post("/api/v1/schedules", json={"name": "ft06", "text": FT06}, headers=eng).json()["id"]
    r = c.post(
        f"/api/v1/schedules/{sid}/replan",
        json={"event": {"type": "machine_down", "machine": 1, "time": 0}},
        headers=eng,
    )
    assert r.status_code == 409  # no plan yet
    job = c.post(f"/api/v1/schedules/{sid}/solve", json={"solver": "rules"}, headers=eng).json()
    assert _wait(api, job["id"], eng)["status"] == "succeeded"
    r = c.post(
        f"/api/v1/schedules/{sid}/replan",
        json={"event": {"type": "machine_down", "machine": 9, "time": 0}},
        headers=eng,
    )
    assert r.status_code == 400 and "unknown machine" in r.json()["detail"]
