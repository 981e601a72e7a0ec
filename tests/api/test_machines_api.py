"""Machines in the service through its API: definitions, readings in and out, models, alerts, roles."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
import zipfile

import numpy as np
import pytest

T0 = time.time() - 3 * 3600  # readings three hours ago: inside the future limit and the retention

PRESS = {
    "name": "press-1",
    "line": "line-1",
    "type": "hydraulic press",
    "stations": ["cam-1"],
    "sensors": [
        {"name": "oil_temp", "unit": "degC", "low": 0, "high": 200},
        {"name": "pressure", "unit": "bar"},
    ],
}


def _setup(api) -> dict:
    eng = api.user("engineer")
    assert api.client.post("/api/v1/lines", json={"name": "line-1"}, headers=eng).status_code == 201
    r = api.client.post("/api/v1/machines", json=PRESS, headers=eng)
    assert r.status_code == 201, r.text
    return eng


def _normal(n: int, start: float = T0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = (start + np.arange(n)).tolist()
    return {
        "time": t,
        "values": {
            "oil_temp": (70 + rng.normal(0, 0.5, n)).round(3).tolist(),
            "pressure": (3 + rng.normal(0, 0.05, n)).round(4).tolist(),
        },
    }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _wait_job(api, job_id: int, headers: dict) -> dict:
    for _ in range(600):
        job = api.client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_machines_are_resources_with_roles(api):
    eng = _setup(api)
    viewer, op = api.user("viewer"), api.user("operator")
    c = api.client
    assert c.post("/api/v1/machines", json={**PRESS, "name": "x"}, headers=viewer).status_code == 403
    assert c.post("/api/v1/machines", json={**PRESS, "name": "x"}, headers=op).status_code == 403
    assert c.post("/api/v1/machines", json=PRESS, headers=eng).status_code == 409
    assert c.post("/api/v1/machines", json={**PRESS, "name": "y", "line": "nope"}, headers=eng).status_code == 404
    got = c.get("/api/v1/machines/press-1", headers=viewer).json()
    assert got["line"] == "line-1" and got["stations"] == ["cam-1"]
    assert [s["name"] for s in got["sensors"]] == ["oil_temp", "pressure"]  # the _score series is not a sensor
    assert got["health"] is None and got["open_alerts"] == 0
    lines = c.get("/api/v1/lines", headers=viewer).json()
    assert lines[0]["name"] == "line-1" and lines[0]["machines"] == 1
    # a bad field names itself
    bad = c.post(
        "/api/v1/machines", json={**PRESS, "name": "z", "sensors": [{"name": "a", "low": 5, "high": 1}]}, headers=eng
    )
    assert bad.status_code == 409 and "sensors[0]: low (5) is above high (1)" in bad.json()["detail"]
    changed = {**PRESS, "sensors": [PRESS["sensors"][0]]}
    r = c.put("/api/v1/machines/press-1", json=changed, headers=eng)
    assert r.status_code == 200 and [s["name"] for s in r.json()["sensors"]] == ["oil_temp"]
    assert c.delete("/api/v1/machines/press-1", headers=op).status_code == 403
    assert c.delete("/api/v1/machines/press-1", headers=eng).status_code == 204
    assert c.get("/api/v1/machines/press-1", headers=viewer).status_code == 404


def test_import_file_creates_and_updates_and_names_bad_fields(api):
    eng = api.user("engineer")
    c = api.client
    yaml_text = b"""
lines:
  - name: line-2
    machines:
      - name: oven-1
        type: oven
        sensors:
          - {name: temp, unit: degC, low: 100, high: 300}
      - name: oven-2
        sensors: [{name: temp}]
"""
    r = c.post("/api/v1/machines/import", files={"file": ("plant.yaml", yaml_text)}, headers=eng)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == ["oven-1", "oven-2"]
    r = c.post("/api/v1/machines/import", files={"file": ("plant.yaml", yaml_text)}, headers=eng)
    assert r.json()["updated"] == ["oven-1", "oven-2"]
    bad = yaml_text.replace(b"low: 100", b"low: hot")
    r = c.post("/api/v1/machines/import", files={"file": ("plant.yaml", bad)}, headers=eng)
    assert r.status_code == 400
    assert "lines[0].machines[0].sensors[0].low" in r.json()["detail"]
    r = c.post("/api/v1/machines/import", files={"file": ("plant.yaml", b"lines: [")}, headers=eng)
    assert r.status_code == 400 and "not valid YAML" in r.json()["detail"]


def test_readings_in_and_out_with_duplicates_and_dead_letters(api):
    eng = _setup(api)
    op, viewer = api.user("operator"), api.user("viewer")
    c = api.client
    assert c.post("/api/v1/machines/press-1/readings", json=_normal(5), headers=viewer).status_code == 403
    r = c.post("/api/v1/machines/press-1/readings", json=_normal(600), headers=op)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 1200, "duplicates": 0, "refused": 0, "reasons": {}}
    again = c.post("/api/v1/machines/press-1/readings", json=_normal(600), headers=op).json()
    assert again["stored"] == 0 and again["duplicates"] == 1200
    mixed = [
        {"sensor": "oil_temp", "time": T0 + 1000, "value": 71.0},
        {"sensor": "nope", "time": T0 + 1000, "value": 1.0},
        {"sensor": "pressure", "time": T0 + 1000, "value": "high"},
        {"sensor": "pressure", "time": time.time() + 86400, "value": 3.0},
    ]
    out = c.post("/api/v1/machines/press-1/readings", json=mixed, headers=op).json()
    assert out["stored"] == 1 and out["refused"] == 3
    assert set(out["reasons"]) == {
        "unknown sensor 'nope' of machine 'press-1'",
        "value not a finite number",
        "time too far in the future",
    }
    none = c.post("/api/v1/machines/press-1/readings", json=[{"sensor": "nope", "value": 1}], headers=op)
    assert none.status_code == 422 and "no reading stored" in none.json()["detail"]
    # the documented 422 body: each reason in `errors`
    assert none.json()["errors"] == [{"loc": ["body"], "msg": "unknown sensor 'nope' of machine 'press-1' (1 reading)"}]
    assert c.post("/api/v1/machines/nope/readings", json=_normal(2), headers=op).status_code == 404
    dead = c.get("/api/v1/dead-letters", headers=eng).json()
    assert {d["reason"] for d in dead} >= {"value not a finite number", "time too far in the future"}
    assert c.get("/api/v1/dead-letters", headers=op).status_code == 403

    start = _iso(T0 - 60)
    end = _iso(T0 + 540)
    q = c.get(
        "/api/v1/machines/press-1/readings",
        params={"sensors": "oil_temp,pressure", "start": start, "end": end, "points": 1000},
        headers=viewer,
    ).json()
    assert q["resolution"] == "raw" and q["step_s"] <= 1.0
    temp = q["series"][0]
    assert temp["sensor"] == "oil_temp" and temp["unit"] == "degC"
    assert sum(temp["n"]) == 540  # the readings inside [start, end)
    assert abs(np.mean(temp["mean"]) - 70) < 0.2
    # a long range reads the per-minute roll-up: the same readings, in buckets
    day = c.get(
        "/api/v1/machines/press-1/readings",
        params={
            "sensors": "oil_temp",
            "start": start,
            "end": _iso(T0 + 86400),
            "points": 100,
        },
        headers=viewer,
    ).json()
    assert day["resolution"] == "10m" and sum(day["series"][0]["n"]) == 601
    assert min(day["series"][0]["min"]) == pytest.approx(min(temp["min"]))
    bad = c.get("/api/v1/machines/press-1/readings", params={"sensors": "nope"}, headers=viewer)
    assert bad.status_code == 400 and "no sensor 'nope'" in bad.json()["detail"]


def test_history_import_csv(api):
    _setup(api)
    op = api.user("operator")
    rows = ["time,oil_temp,pressure"] + [f"{T0 + i},{70 + i % 3},{3.0}" for i in range(100)]
    r = api.client.post(
        "/api/v1/machines/press-1/readings/import",
        files={"file": ("history.csv", "\n".join(rows).encode())},
        headers=op,
    )
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 200
    r = api.client.post(
        "/api/v1/machines/press-1/readings/import", files={"file": ("x.csv", b"\x00\x01garbage")}, headers=op
    )
    assert r.status_code == 400


def test_model_training_activation_alerts_and_acknowledgement(api):
    eng = _setup(api)
    op, viewer = api.user("operator"), api.user("viewer")
    c = api.client
    assert c.post("/api/v1/machines/press-1/readings", json=_normal(2000), headers=op).status_code == 200
    start, end = _iso(T0 - 1), _iso(T0 + 2000)
    assert (
        c.post("/api/v1/machines/press-1/models/train", json={"start": start, "end": end}, headers=op).status_code
        == 403
    )
    bad = c.post("/api/v1/machines/press-1/models/train", json={"params": {"alpha": 7}}, headers=eng)
    assert bad.status_code == 422  # out of the parameter's declared bounds
    r = c.post("/api/v1/machines/press-1/models/train", json={"start": start, "end": end}, headers=eng)
    assert r.status_code == 202, r.text
    job = _wait_job(api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    models = c.get("/api/v1/machines/press-1/models", headers=viewer).json()
    assert len(models) == 1 and models[0]["status"] == "ready" and models[0]["metrics"]["time_steps"] == 2000
    assert models[0]["metrics"]["alert_rate"] < 0.01
    m = c.post(f"/api/v1/machine-models/{models[0]['id']}/activate", headers=eng).json()
    assert m["active_model_id"] == models[0]["id"]

    # normal readings, then the oil overheats: one alert naming oil_temp, extended, then closed after quiet
    c.post("/api/v1/machines/press-1/readings", json=_normal(100, T0 + 2000, seed=1), headers=op)
    hot = _normal(30, T0 + 2100, seed=2)
    hot["values"]["oil_temp"] = [90.0 + i for i in range(30)]
    c.post("/api/v1/machines/press-1/readings", json=hot, headers=op)
    opened = c.get("/api/v1/alerts", params={"machine": "press-1", "status": "open"}, headers=viewer).json()
    assert len(opened) == 1, opened
    alert = opened[0]
    assert alert["sensors"][0]["sensor"] == "oil_temp"
    assert alert["anomalous_readings"] > 1
    machine = c.get("/api/v1/machines/press-1", headers=viewer).json()
    assert machine["open_alerts"] == 1 and machine["health"] < 0.9
    # quiet for longer than alert_quiet_s: closed
    c.post("/api/v1/machines/press-1/readings", json=_normal(200, T0 + 2130, seed=3), headers=op)
    closed = c.get(f"/api/v1/alerts/{alert['id']}", headers=viewer).json()
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    # the score series is stored like a sensor's
    q = c.get(
        "/api/v1/machines/press-1/readings",
        params={
            "sensors": "_score",
            "start": _iso(T0 + 2000),
            "end": _iso(T0 + 2400),
        },
        headers=viewer,
    ).json()
    assert q["threshold"] == 3.0 and max(q["series"][0]["max"]) > 3.0

    assert c.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={}, headers=viewer).status_code == 403
    ack = c.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"comment": "cooler fan replaced"}, headers=op)
    assert ack.status_code == 200 and ack.json()["acknowledged_by"] == "operator-user"
    assert c.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={}, headers=op).status_code == 409
    c.post(f"/api/v1/alerts/{alert['id']}/comments", json={"text": "checked again at noon"}, headers=op)
    detail = c.get(f"/api/v1/alerts/{alert['id']}", headers=viewer).json()
    assert [x["text"] for x in detail["comments"]] == ["cooler fan replaced", "checked again at noon"]

    # a second version, then roll back to the first
    r = c.post(
        "/api/v1/machines/press-1/models/train",
        json={"start": start, "end": end, "params": {"threshold": 4}},
        headers=eng,
    )
    second = _wait_job(api, r.json()["id"], eng)["result"]["machine_model_id"]
    c.post(f"/api/v1/machine-models/{second}/activate", headers=eng)
    back = c.post("/api/v1/machines/press-1/rollback", headers=eng).json()
    assert back["active_model_id"] == models[0]["id"]


def test_range_alert_without_a_model(api):
    _setup(api)
    op, viewer = api.user("operator"), api.user("viewer")
    c = api.client
    c.post("/api/v1/machines/press-1/readings", json={"sensor": "oil_temp", "time": T0, "value": 250.0}, headers=op)
    got = c.get("/api/v1/alerts", headers=viewer).json()
    assert len(got) == 1 and got[0]["sensors"][0] == {"sensor": "oil_temp", "value": 250.0, "reason": "above 200"}


@pytest.mark.parametrize(
    "method, params",
    [
        ("stream", {"learning_period": 100}),
        ("surprise", {"learning_period": 100}),
        ("mahalanobis", {"windows": [5]}),
        ("knn", {"n_neighbors": 5}),
    ],
)
def test_training_from_an_uploaded_file(api, method, params):
    eng = _setup(api)
    rng = np.random.default_rng(0)
    buf = io.StringIO()
    buf.write("time,oil_temp,pressure\n")
    for i in range(1000):
        buf.write(f"{T0 + i},{70 + rng.normal(0, 0.5):.3f},{3 + rng.normal(0, 0.05):.4f}\n")
    r = api.client.post(
        "/api/v1/machines/press-1/models/train-file",
        files={"file": ("normal.csv", buf.getvalue().encode())},
        data={"params": json.dumps(params), "method": method},
        headers=eng,
    )
    assert r.status_code == 202, r.text
    job = _wait_job(api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    assert job["result"]["time_steps"] == 1000
    (model,) = api.client.get("/api/v1/machines/press-1/models", headers=eng).json()
    assert model["method"] == method and {k: model["params"][k] for k in params} == params


def test_a_deleted_machine_with_an_open_alert_does_not_stop_ingest(api):
    eng = _setup(api)
    op = api.user("operator")
    c = api.client
    c.post("/api/v1/machines/press-1/readings", json={"sensor": "oil_temp", "time": T0, "value": 250.0}, headers=op)
    assert c.get("/api/v1/alerts", params={"status": "open"}, headers=eng).json()
    assert c.delete("/api/v1/machines/press-1", headers=eng).status_code == 204
    assert c.post("/api/v1/machines", json=PRESS, headers=eng).status_code == 201
    r = c.post(
        "/api/v1/machines/press-1/readings", json={"sensor": "oil_temp", "time": T0 + 1, "value": 250.0}, headers=op
    )
    assert r.status_code == 200 and r.json()["stored"] == 1
    alerts = c.get("/api/v1/alerts", headers=eng).json()
    assert len(alerts) == 1 and alerts[0]["status"] == "open"  # the old machine's alert went with it


def test_readings_still_queued_when_the_service_stops_are_stored(api):
    """Stopping the service wakes the ingester's loop instead of leaving it to its next poll; what is queued at that
    moment is still taken and stored before the loop ends, never dropped by the wake-up."""
    _setup(api)
    ingester = api.ctx.ingester
    futures = [ingester.ingest("press-1", _normal(5, start=T0 + 5 * i, seed=i), score=False) for i in range(40)]
    ingester.stop()
    assert not ingester._thread.is_alive()
    assert [f.result(timeout=0).stored for f in futures] == [10] * 40  # two sensors × five time steps each


def test_a_model_running_the_surprise_detector(api, tmp_path):
    """``method: surprise`` trains the sensor engine's surprise detector: its own parameters and bounds (a stream
    parameter is refused for it), its threshold on the score series, an alert naming the sensor that left its range,
    and its live state carried over a restart of the scorer. An unknown detector is refused."""
    eng = _setup(api)
    op, viewer = api.user("operator"), api.user("viewer")
    c = api.client
    assert c.post("/api/v1/machines/press-1/readings", json=_normal(2000), headers=op).status_code == 200
    start, end = _iso(T0 - 1), _iso(T0 + 2000)
    url = "/api/v1/machines/press-1/models/train"
    for body in (
        {"method": "surprise", "params": {"suppress": 0}},  # the stream detector's parameter
        {"method": "surprise", "params": {"threshold": 2}},  # a surprise score is at most 1
        {"method": "zscore"},
    ):
        assert c.post(url, json={"start": start, "end": end, **body}, headers=eng).status_code == 422, body
    r = c.post(url, json={"start": start, "end": end, "method": "surprise", "params": {"window": 6}}, headers=eng)
    assert r.status_code == 202, r.text
    job = _wait_job(api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    (model,) = c.get("/api/v1/machines/press-1/models", headers=viewer).json()
    assert model["method"] == "surprise" and model["params"]["window"] == 6
    assert model["metrics"]["threshold"] == 0.5 and model["metrics"]["sensors"][0]["mean"] == pytest.approx(70, abs=0.1)
    c.post(f"/api/v1/machine-models/{model['id']}/activate", headers=eng)

    c.post("/api/v1/machines/press-1/readings", json=_normal(100, T0 + 2000, seed=1), headers=op)
    assert c.get("/api/v1/alerts", params={"machine": "press-1"}, headers=viewer).json() == []
    hot = _normal(30, T0 + 2100, seed=2)
    hot["values"]["oil_temp"] = [90.0 + i for i in range(30)]
    c.post("/api/v1/machines/press-1/readings", json=hot, headers=op)
    (alert,) = c.get("/api/v1/alerts", params={"machine": "press-1", "status": "open"}, headers=viewer).json()
    assert alert["sensors"][0]["sensor"] == "oil_temp" and alert["model_id"] == model["id"]
    q = c.get(
        "/api/v1/machines/press-1/readings",
        params={"sensors": "_score", "start": _iso(T0 + 2000)},
        headers=viewer,
    ).json()
    assert q["threshold"] == 0.5 and 0.5 <= max(q["series"][0]["max"]) <= 1.0

    # the scorer's live state is the surprise detector's, saved and opened again as such
    from linewatch.sensors.surprise import SurpriseDetector
    from linewatch.services.machine_models import MachineScorer
    from linewatch.store.tables import MachineModel

    (scorer,) = [s for s in api.ctx.ingester.scorers.values() if s is not None]
    assert isinstance(scorer.det, SurpriseDetector) and scorer.model_id == model["id"]
    scorer.checkpoint(tmp_path / "live")
    with api.ctx.sessions() as s:
        path = s.get(MachineModel, model["id"]).path
    again = MachineScorer.open(model["id"], path, tmp_path / "live", "surprise")
    assert isinstance(again.det, SurpriseDetector) and (again.last_ts == scorer.last_ts).all()
    assert (again.last_ts > 0).all()  # the live state, not the trained one (which has scored nothing yet)


def _cycle(n, start, seed, pressure_offset=0.0) -> dict:
    """Readings of a press whose oil temperature and pressure follow its load cycle together (the cycle goes on from
    run to run); ``pressure_offset`` lowers the pressure alone."""
    rng = np.random.default_rng(seed)
    load = np.sin((start - T0 + np.arange(n)) / 40.0)
    return {
        "time": (start + np.arange(n)).tolist(),
        "values": {
            "oil_temp": (70 + 3 * load + rng.normal(0, 0.1, n)).round(3).tolist(),
            "pressure": (3 + 0.3 * load + pressure_offset + rng.normal(0, 0.01, n)).round(4).tolist(),
        },
    }


@pytest.mark.parametrize(
    "method, refused",
    [
        ("mahalanobis", [{"n_neighbors": 5}]),
        ("pca", [{"n_components": 0}, {"shrinkage": 0.5}]),
        ("knn", [{"n_neighbors": 0}, {"n_bins": 10}]),
        ("lof", [{"n_neighbors": 501}, {"n_estimators": 100}]),
    ],
)
def test_a_table_model_over_all_the_sensors(api, tmp_path, method, refused):
    """A table detector (mahalanobis, or another of the sensor engine's methods, each with its own parameters and
    bounds: another method's is refused) fits one model over all the machine's sensors (read at the same times) and
    scores it live: oil temperature and pressure move together in normal running, so a pressure drop while the oil
    stays at its level is anomalous though each value is within its usual range; the alert names pressure. The live
    state carries the training readings' last rows, is checkpointed and opened again as a table model."""
    eng = _setup(api)
    op, viewer = api.user("operator"), api.user("viewer")
    c = api.client
    run = _cycle

    assert c.post("/api/v1/machines/press-1/readings", json=run(2000, T0, 0), headers=op).status_code == 200
    start, end = _iso(T0 - 1), _iso(T0 + 2000)
    url = "/api/v1/machines/press-1/models/train"
    common = [{"learning_period": 100}, {"windows": [0]}, {"windows": [True]}, {"false_alarm_rate": 0.7}]
    for params in common + refused:
        r = c.post(url, json={"start": start, "end": end, "method": method, "params": params}, headers=eng)
        assert r.status_code == 422, (params, r.text)
    r = c.post(url, json={"start": start, "end": end, "method": method, "params": {"windows": [10]}}, headers=eng)
    assert r.status_code == 202, r.text
    job = _wait_job(api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    (model,) = c.get("/api/v1/machines/press-1/models", headers=viewer).json()
    assert model["method"] == method and model["params"]["windows"] == [10]
    assert model["metrics"]["time_steps"] == 2000 and model["metrics"]["alert_rate"] < 0.02
    c.post(f"/api/v1/machine-models/{model['id']}/activate", headers=eng)

    c.post("/api/v1/machines/press-1/readings", json=run(60, T0 + 2000, 1), headers=op)
    assert c.get("/api/v1/alerts", params={"machine": "press-1"}, headers=viewer).json() == []
    # near the top of the load cycle, pressure 0.25 bar low for 30 s: 3.0-3.05 bar, inside its range over the
    # training readings (2.7-3.3 bar), but not with oil this hot
    fault = run(30, T0 + 2060, 2, pressure_offset=-0.25)
    assert min(fault["values"]["pressure"]) > 2.75 and max(fault["values"]["pressure"]) < 3.25
    c.post("/api/v1/machines/press-1/readings", json=fault, headers=op)
    (alert,) = c.get("/api/v1/alerts", params={"machine": "press-1", "status": "open"}, headers=viewer).json()
    assert alert["sensors"][0]["sensor"] == "pressure" and alert["model_id"] == model["id"]
    assert alert["anomalous_readings"] > 5  # several time steps of the fault, not one

    from linewatch.sensors.live import LiveTable
    from linewatch.services.machine_models import MachineScorer
    from linewatch.store.tables import MachineModel

    (scorer,) = [s for s in api.ctx.ingester.scorers.values() if s is not None]
    assert isinstance(scorer.det, LiveTable) and scorer.threshold == model["metrics"]["threshold"]
    scorer.checkpoint(tmp_path / "live")
    with api.ctx.sessions() as s:
        path = s.get(MachineModel, model["id"]).path
    again = MachineScorer.open(model["id"], path, tmp_path / "live", method)
    assert isinstance(again.det, LiveTable) and type(again.det.det) is type(scorer.det.det)
    assert (again.last_ts == scorer.last_ts).all()
    np.testing.assert_array_equal(again.det.values_, scorer.det.values_)
    fresh = MachineScorer.open(model["id"], path, tmp_path / "none", method)  # the state training left
    assert len(fresh.det.values_) == fresh.det.context and (fresh.last_ts == -1).all()


def _zip(folder, skip=()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in sorted(folder.iterdir()):
            if f.name not in skip:
                z.write(f, f"model/{f.name}")
    return buf.getvalue()


def test_a_model_fitted_with_the_sensors_command_is_imported_and_runs_live(api, tmp_path):
    """A table model fitted elsewhere (the sensor engine, as ``linewatch sensors fit`` fits it) is uploaded as a zip of
    its folder (here through the Python client), becomes the machine's next version, ready, and once activated
    scores the readings: the pressure drop alerts, naming pressure. Refused with a reason: not a zip, a folder with
    a file missing, a model whose stored rows no longer score as saved (the reason names the upload, not the
    server's folders), a model reading a sensor the machine lacks, an unknown machine; none leaves a version."""
    from linewatch.client import Client
    from linewatch.sensors.methods import METHODS
    from linewatch.sensors.saving import save

    eng = _setup(api)
    op, viewer = api.user("operator"), api.user("viewer")
    c = api.client
    fit = _cycle(2000, T0, 0)
    values = np.c_[fit["values"]["oil_temp"], fit["values"]["pressure"]]
    det = METHODS.create("pca", windows=[10]).fit([(values, np.asarray(fit["time"]))], sensors=["oil_temp", "pressure"])
    save(det, tmp_path / "m", {"rows": 2000})
    url = "/api/v1/machines/press-1/models/import"

    def post(data: bytes, machine_url: str = url):
        return c.post(machine_url, files={"file": ("m.zip", data)}, headers=eng)

    assert post(b"time,oil_temp\n1,2\n").status_code == 400
    crowded = io.BytesIO()
    with zipfile.ZipFile(crowded, "w") as z:
        for i in range(1001):
            z.writestr(f"x/{i}.txt", "")
    r = post(crowded.getvalue())
    assert r.status_code == 413 and "1001 entries" in r.json()["detail"]
    r = post(_zip(tmp_path / "m", skip={"check_scores.npy"}))
    assert r.status_code == 400 and "check_scores.npy" in r.json()["detail"]
    assert post(_zip(tmp_path / "m"), "/api/v1/machines/nosuch/models/import").status_code == 404
    tampered = tmp_path / "tampered"
    shutil.copytree(tmp_path / "m", tampered)
    np.save(tampered / "check_scores.npy", np.load(tampered / "check_scores.npy") + 1.0)
    manifest = json.loads((tampered / "manifest.json").read_text())
    digest = hashlib.sha256((tampered / "check_scores.npy").read_bytes()).hexdigest()
    manifest["files"]["check_scores"]["sha256"] = digest
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    r = post(_zip(tampered))
    assert r.status_code == 400 and "scores its check rows differently" in r.json()["detail"], r.text
    assert str(api.ctx.settings.models_dir) not in r.json()["detail"] and "m.zip" in r.json()["detail"]
    other = METHODS.create("pca", windows=[10]).fit([(values, None)], sensors=["oil_temp", "spindle"])
    save(other, tmp_path / "other")
    r = post(_zip(tmp_path / "other"))
    assert r.status_code == 409 and "spindle" in r.json()["detail"]
    assert c.get("/api/v1/machines/press-1/models", headers=viewer).json() == []
    assert not [p for p in (api.ctx.settings.models_dir / "machines" / "press-1").iterdir()]

    class Via:  # the Python client's requests, through the test app with the engineer's token
        def request(self, method, path, **kw):
            return c.request(method, path, headers=eng, **kw)

    lw = Client("http://testserver")
    lw._http = Via()
    model = lw.import_machine_model("press-1", tmp_path / "m")
    assert model["status"] == "ready" and model["method"] == "pca" and model["version"] == 1
    assert model["sensors"] == ["oil_temp", "pressure"] and model["metrics"]["imported"] is True
    assert model["metrics"]["threshold"] == pytest.approx(det.threshold_) and model["metrics"]["training_rows"] == 2000
    assert model["params"]["windows"] == [10] and model["source"]["file"] == "m.zip"
    assert lw.activate_machine_model(model["id"])["active_model_id"] == model["id"]

    c.post("/api/v1/machines/press-1/readings", json=_cycle(60, T0 + 2000, 1), headers=op)
    assert c.get("/api/v1/alerts", params={"machine": "press-1"}, headers=viewer).json() == []
    c.post("/api/v1/machines/press-1/readings", json=_cycle(30, T0 + 2060, 2, pressure_offset=-0.25), headers=op)
    (alert,) = c.get("/api/v1/alerts", params={"machine": "press-1", "status": "open"}, headers=viewer).json()
    assert alert["sensors"][0]["sensor"] == "pressure" and alert["model_id"] == model["id"]

    # downloaded, it is the engine's model folder again (with the live state its scoring started from), and it
    # imports into another machine with the same sensors
    r = c.get(f"/api/v1/machine-models/{model['id']}/files", headers=viewer)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="linewatch-press-1-v1.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        z.extractall(tmp_path / "back")
    from linewatch.sensors.saving import load

    x = values[:300]
    np.testing.assert_allclose(load(tmp_path / "back").score(x), det.score(x), rtol=1e-9)
    assert c.get("/api/v1/machine-models/999/files", headers=viewer).status_code == 404
    press2 = {**PRESS, "name": "press-2", "stations": []}
    assert c.post("/api/v1/machines", json=press2, headers=eng).status_code == 201
    again = post(r.content, "/api/v1/machines/press-2/models/import")
    assert again.status_code == 201 and again.json()["machine"] == "press-2" and again.json()["method"] == "pca"
    assert again.json()["metrics"]["checked_on_time_steps"] == 0  # press-2 has no readings yet

    # imported where readings are stored, it is run over the newest of them: its alert rate there (here the 90 time
    # steps since the first import, the pressure fault among them, led by pressure), and its live state starts
    # where they end, as if it had scored them
    from linewatch.sensors.live import LiveTable
    from linewatch.services.machine_models import MachineScorer
    from linewatch.store.tables import MachineModel

    v2 = post(_zip(tmp_path / "m")).json()
    context = LiveTable(det).context
    assert v2["version"] == 2 and v2["metrics"]["checked_on_time_steps"] == 90 == v2["metrics"]["time_steps"]
    oil, pressure = v2["metrics"]["sensors"]
    assert pressure["alert_rate"] > 0.05 and oil["alert_rate"] < pressure["alert_rate"]
    assert pressure["mean"] == pytest.approx(3.0, abs=0.3) and v2["metrics"]["alert_rate"] > 0.05
    with api.ctx.sessions() as s:
        path = s.get(MachineModel, v2["id"]).path
    scorer = MachineScorer.open(v2["id"], path, tmp_path / "no-checkpoint", "pca")
    last = _cycle(30, T0 + 2060, 2, pressure_offset=-0.25)["values"]
    np.testing.assert_allclose(scorer.det.values_[-1], [last["oil_temp"][-1], last["pressure"][-1]])
    assert len(scorer.det.values_) == context and scorer.det.times_[-1] == pytest.approx(T0 + 2089, abs=1e-3)
