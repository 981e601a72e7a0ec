"""Predictive maintenance in the service: a machine's RUL model trained as a job on an uploaded run-to-failure
history, predictions per completed cycle of its readings, a maintenance alert under the threshold, maintenance
recorded."""

from __future__ import annotations

import datetime as dt
import json
import time

import numpy as np
import pytest

pytest.importorskip("torch")

from linewatch.maintenance.synthetic import run_to_failure  # noqa: E402

CYCLE_S = 60  # one cycle of the model = one minute of the machine's readings


def _wait(api, job_id: int, h: dict) -> dict:
    for _ in range(3000):
        job = api.client.get(f"/api/v1/jobs/{job_id}", headers=h).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_rul_from_readings_alert_and_maintenance_done(api, race):
    from linewatch.core.events import MaintenancePredicted
    from linewatch.services.maintenance import MaintenanceWatcher

    eng, op, viewer = api.user("engineer"), api.user("operator"), api.user("viewer")
    c = api.client
    history, _ = run_to_failure(12, n_sensors=4, seed=1, min_life=40, max_life=60)
    columns = [col for col in history.columns if col not in ("unit", "cycle")]
    c.post("/api/v1/lines", json={"name": "L1"}, headers=eng)
    spec = {"name": "engine-1", "line": "L1", "sensors": [{"name": col} for col in columns]}
    assert c.post("/api/v1/machines", json=spec, headers=eng).status_code == 201

    params = {"target": "rul", "cycle_s": CYCLE_S, "alert_below_s": 10 * CYCLE_S, "window": 10, "folds": 2,
              "epochs": 2, "tree_iter": 20, "channels": 8}  # fmt: skip
    r = c.post(
        "/api/v1/machines/engine-1/maintenance/train-file",
        files={"file": ("history.csv", history.to_csv(index=False).encode())},
        data={"params": json.dumps(params)},
        headers=eng,
    )
    assert r.status_code == 202, r.text
    job = _wait(api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    mid = job["result"]["machine_model_id"]
    model = c.get(f"/api/v1/machine-models/{mid}", headers=viewer).json()
    assert model["kind"] == "rul" and model["status"] == "ready" and set(model["sensors"]) == set(columns)
    got = c.post(f"/api/v1/machine-models/{mid}/activate", headers=eng).json()
    assert got["maintenance_model_id"] == mid and got["active_model_id"] is None

    api.ctx.maintenance.stop()  # its rounds are run below, at the test's pace
    # the machine lives one unit of the history again, a cycle per minute of readings (3 readings a minute)
    unit = history[history.unit == 1]
    t0 = (int(time.time()) // 3600 - 3) * 3600  # three hours ago, on the hour
    times = [t0 + (cyc - 1) * CYCLE_S + k * 20 for cyc in unit.cycle for k in range(3)]
    values = {col: np.repeat(unit[col].to_numpy(), 3).tolist() for col in columns}
    assert (
        c.post("/api/v1/machines/engine-1/readings", json={"time": times, "values": values}, headers=op).status_code
        == 200
    )
    # two service processes predict the same cycles at once: stored once, published once, one alert
    heard = []
    api.ctx.bus.subscribe(heard.append, MaintenancePredicted)
    one, two = MaintenanceWatcher(api.ctx), MaintenanceWatcher(api.ctx)
    stored = race([one.run_once, two.run_once], at=[(one, "_estimator"), (two, "_estimator")])
    assert sorted(stored) == [0, len(unit) - 1]  # the cycle still running is not predicted
    assert len(heard) == 1 and heard[0].cycle == len(unit) - 1
    assert api.ctx.maintenance.run_once() == 0  # nothing new
    out = c.get("/api/v1/machines/engine-1/maintenance", headers=viewer).json()
    preds = out["predictions"]
    assert out["cycle_s"] == CYCLE_S and len(preds) == len(unit) - 1
    assert [p["cycle"] for p in preds] == list(range(1, len(unit)))
    assert all(p["rul_low"] <= p["rul_high"] for p in preds)
    assert preds[-1]["rul"] < preds[0]["rul"]  # the engine wears out
    alerts = c.get("/api/v1/alerts", params={"machine": "engine-1"}, headers=viewer).json()
    assert [a["kind"] for a in alerts] == ["maintenance"] and alerts[0]["status"] == "open"
    assert "lower bound" in alerts[0]["sensors"][0]["reason"]

    assert c.post("/api/v1/machines/engine-1/maintenance/done", json={}, headers=viewer).status_code == 403
    done = c.post("/api/v1/machines/engine-1/maintenance/done", json={}, headers=op)
    assert done.status_code == 200 and done.json()["life_start"] is not None
    assert c.get(f"/api/v1/alerts/{alerts[0]['id']}", headers=viewer).json()["status"] == "closed"


def test_a_history_whose_columns_are_not_the_machines_sensors_fails_clearly(api):
    eng = api.user("engineer")
    c = api.client
    history, _ = run_to_failure(6, n_sensors=3, seed=2, min_life=30, max_life=40)
    c.post("/api/v1/lines", json={"name": "L1"}, headers=eng)
    c.post("/api/v1/machines", json={"name": "m", "line": "L1", "sensors": [{"name": "temp"}]}, headers=eng)
    bad = c.post("/api/v1/machines/m/maintenance/train-file", files={"file": ("h.csv", b"x")},
                 data={"params": '{"target": "nope"}'}, headers=eng)  # fmt: skip
    assert bad.status_code == 400 and "target" in bad.json()["detail"]
    r = c.post(
        "/api/v1/machines/m/maintenance/train-file",
        files={"file": ("h.csv", history.to_csv(index=False).encode())},
        data={"params": json.dumps({"window": 5, "folds": 2, "epochs": 1, "tree_iter": 5, "channels": 4})},
        headers=eng,
    )
    job = _wait(api, r.json()["id"], eng)
    assert job["status"] == "failed" and "not sensors of machine 'm'" in job["error"]


def _live(c, name: str, unit, columns: list[str], start: int, h: dict) -> int:
    """The machine lives one generated unit from ``start`` (s), a cycle per minute (3 readings each); the end."""
    times = [start + (cyc - 1) * CYCLE_S + k * 20 for cyc in unit.cycle for k in range(3)]
    values = {col: np.repeat(unit[col].to_numpy(), 3).tolist() for col in columns}
    r = c.post(f"/api/v1/machines/{name}/readings", json={"time": times, "values": values}, headers=h)
    assert r.status_code == 200, r.text
    return start + len(unit) * CYCLE_S


def test_rul_trained_on_the_stored_readings_of_runs_to_failure(api):
    """Lives recorded as failed (maintenance done with failure) are run-to-failure histories: one machine's own, or
    its fleet's (machines of its type); too few runs is 409 saying how many there are."""
    from linewatch.services.maintenance import stored_histories
    from linewatch.store.tables import Machine

    eng, op = api.user("engineer"), api.user("operator")
    c = api.client
    history, _ = run_to_failure(4, n_sensors=3, seed=3, min_life=20, max_life=30)
    columns = ["sensor_1", "sensor_2", "sensor_3"]
    c.post("/api/v1/lines", json={"name": "L1"}, headers=eng)
    for name, sensors in (("press-1", columns), ("press-2", columns), ("press-3", columns[:2]), ("lone", columns)):
        spec = {"name": name, "line": "L1", "type": "" if name == "lone" else "press",
                "sensors": [{"name": s} for s in sensors]}  # fmt: skip
        assert c.post("/api/v1/machines", json=spec, headers=eng).status_code == 201, name
    t0 = (int(time.time()) // 3600 - 4) * 3600
    lives = {"press-1": [1, 2], "press-2": [3, 4]}
    for name, units in lives.items():
        start = t0
        for u in units:
            end = _live(c, name, history[history.unit == u], columns, start, op)
            at = dt.datetime.fromtimestamp(end, dt.UTC).isoformat()
            done = c.post(f"/api/v1/machines/{name}/maintenance/done", json={"time": at, "failure": True}, headers=op)
            assert done.status_code == 200, done.text
            start = end
    # a failure before the life started is refused
    early = dt.datetime.fromtimestamp(t0, dt.UTC).isoformat()
    assert c.post("/api/v1/machines/press-1/maintenance/done", json={"failed_at": early}, headers=op).status_code == 409

    # the histories are the generated units again: a cycle's mean is its value, RUL counts to the failure
    with api.ctx.sessions() as s:
        m = s.query(Machine).filter_by(name="press-1").one()
    h, used = stored_histories(api.ctx, m, {"machines": ["press-1", "press-2", "press-3"]}, CYCLE_S)
    assert used["runs"] == 4 and used["machines"] == ["press-1", "press-2"]
    assert any("press-3" in why and "sensor_3" in why for why in used["left_out"])
    assert h.sensor_names == columns and h.setting_names == []
    np.testing.assert_allclose(h.sensors, history[columns].to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(h.cycles, history.cycle.to_numpy())
    life = history.groupby("unit").cycle.transform("max").to_numpy()
    np.testing.assert_allclose(h.rul, life - history.cycle.to_numpy())

    params = {"cycle_s": CYCLE_S, "window": 5, "folds": 3, "epochs": 1, "tree_iter": 5, "channels": 4}
    short = c.post("/api/v1/machines/press-1/maintenance/train", json={"params": params}, headers=eng)
    assert short.status_code == 409 and "2 run(s) to failure" in short.json()["detail"], short.text
    typeless = c.post("/api/v1/machines/lone/maintenance/train", json={"params": params, "fleet": True}, headers=eng)
    assert typeless.status_code == 409 and "no type" in typeless.json()["detail"]
    for bad in ({"target": "failure"}, {"cycle_s": 0}, {"window": 2}, {"no_such": 1}):
        r = c.post("/api/v1/machines/press-1/maintenance/train", json={"params": bad}, headers=eng)
        assert r.status_code == 422, (bad, r.text)
    late = {"time": early, "failed_at": dt.datetime.fromtimestamp(t0 + 60, dt.UTC).isoformat()}
    r = c.post("/api/v1/machines/lone/maintenance/done", json=late, headers=op)
    assert r.status_code == 409 and "repaired after it fails" in r.json()["detail"]
    assert c.post("/api/v1/machines/press-1/maintenance/train", json={}, headers=op).status_code == 403

    r = c.post("/api/v1/machines/press-1/maintenance/train", json={"params": params, "fleet": True}, headers=eng)
    assert r.status_code == 202, r.text
    job = _wait(api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    model = c.get(f"/api/v1/machine-models/{job['result']['machine_model_id']}", headers=eng).json()
    assert model["kind"] == "rul" and model["status"] == "ready" and model["sensors"] == columns
    assert model["metrics"]["units"] == 4 and model["metrics"]["readings"]["runs"] == 4
