"""The service and the team's MLflow Model Registry: a model trained with ``linewatch train`` elsewhere, pushed to
the registry, imported as a model version, activated and inspecting; a service version published back."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("torch")


@pytest.fixture
def registry_uri(tmp_path, monkeypatch) -> str:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "registry").mkdir()
    return f"sqlite:///{tmp_path / 'registry' / 'mlflow.db'}"


@pytest.fixture
def reg_api(api_with, registry_uri):
    return api_with(registry_uri=registry_uri)


def _wait(api, job_id: int, h: dict) -> dict:
    for _ in range(2400):
        job = api.client.get(f"/api/v1/jobs/{job_id}", headers=h).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


def test_a_registered_model_is_imported_activated_and_published_back(reg_api, registry_uri, trained, synthetic):
    from linewatch.core import modelregistry

    c = reg_api.client
    eng, op, viewer = reg_api.user("engineer"), reg_api.user("operator"), reg_api.user("viewer")
    _, model_dir = trained  # trained with the library, as `linewatch train` on a workstation; no ONNX export
    assert "onnx" not in json.loads((model_dir / "manifest.json").read_text())["files"]
    modelregistry.push(model_dir, "washer", registry_uri, alias="production")

    body = {"ref": "washer@production"}
    assert c.post("/api/v1/registry/import", json=body, headers=op).status_code == 403
    r = c.post("/api/v1/registry/import", json=body, headers=eng)
    assert r.status_code == 202, r.text
    job = _wait(reg_api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    model_id = job["result"]["model_id"]
    assert job["result"]["version"] == 1 and job["params"]["version"] == 1
    mv = c.get(f"/api/v1/models/{model_id}", headers=viewer).json()
    assert mv["status"] == "ready" and mv["name"] == "washer v1 (registry)" and mv["method"] == "patchcore"
    assert mv["image_size"] == 128 and mv["threshold"] is not None
    assert mv["metrics"]["registry"]["name"] == "washer" and mv["metrics"]["registry"]["version"] == 1
    # exported on import: the service scores it through ONNX Runtime like the versions it trains
    assert c.get(f"/api/v1/models/{model_id}/export", headers=viewer).status_code == 200

    c.post("/api/v1/stations", json={"name": "cam1"}, headers=eng)
    assert c.post(f"/api/v1/models/{model_id}/activate", json={"station": "cam1"}, headers=eng).status_code == 200
    image = sorted((Path(synthetic) / "test" / "good").iterdir())[0]
    r = c.post("/api/v1/stations/cam1/inspect", files=[("files", (image.name, image.read_bytes()))], headers=op)
    assert r.status_code == 200, r.text
    assert r.json()[0]["model_id"] == model_id and r.json()[0]["verdict"] in ("good", "anomalous")

    r = c.post(f"/api/v1/models/{model_id}/publish", json={"name": "washer", "alias": "line"}, headers=eng)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["alias"] == "line"
    rows = modelregistry.versions("washer", registry_uri)
    assert [(v["version"], v["aliases"]) for v in rows] == [(2, ["line"]), (1, ["production"])]
    audit = c.get("/api/v1/audit", headers=reg_api.user("admin")).json()["items"]
    assert {"model.import", "model.publish"} <= {e["action"] for e in audit}


def test_what_cannot_be_imported_is_refused_or_fails_clearly(reg_api, registry_uri, trained, tmp_path):
    from linewatch.core import modelregistry
    from linewatch.sensors.methods import METHODS
    from linewatch.sensors.saving import save

    c = reg_api.client
    eng = reg_api.user("engineer")
    r = c.post("/api/v1/registry/import", json={"ref": "nothing@production"}, headers=eng)
    assert r.status_code == 404 and "no alias 'production' of model 'nothing'" in r.json()["detail"]
    import numpy as np

    pump = save(METHODS.create("mahalanobis").fit(np.random.default_rng(0).normal(size=(200, 2))), tmp_path / "pump")
    modelregistry.push(pump, "pump", registry_uri)
    r = c.post("/api/v1/registry/import", json={"ref": "pump"}, headers=eng)
    assert r.status_code == 409 and "sensors model" in r.json()["detail"]
    assert c.post("/api/v1/registry/import", json={"ref": "a/b/c"}, headers=eng).status_code == 422

    # the registry's copy damaged after it was registered: the job fails, its version with it, nothing is left
    _, model_dir = trained
    modelregistry.push(model_dir, "washer", registry_uri)
    weights = next(p.name for p in model_dir.iterdir() if p.name != "manifest.json")
    stored = next((tmp_path / "registry" / "mlartifacts").rglob(weights))
    stored.write_bytes(stored.read_bytes()[:-8] + b"\0" * 8)
    r = c.post("/api/v1/registry/import", json={"ref": "washer/1"}, headers=eng)
    job = _wait(reg_api, r.json()["id"], eng)
    assert job["status"] == "failed" and "damaged" in job["error"]
    versions = c.get("/api/v1/models", headers=eng).json()
    assert [v["status"] for v in versions] == ["failed"]
    assert not any((reg_api.ctx.settings.models_dir).glob("*/manifest.json"))

    assert c.post("/api/v1/models/99/publish", json={"name": "x"}, headers=eng).status_code == 404
    r = c.post(f"/api/v1/models/{versions[0]['id']}/publish", json={"name": "x"}, headers=eng)
    assert r.status_code == 409 and "not ready" in r.json()["detail"]


def test_without_a_registry_the_service_says_how_to_set_one(api):
    eng = api.user("engineer")
    r = api.client.post("/api/v1/registry/import", json={"ref": "washer@production"}, headers=eng)
    assert r.status_code == 409 and "LINEWATCH_REGISTRY_URI" in r.json()["detail"]
    shutil.rmtree(api.ctx.settings.models_dir, ignore_errors=True)


MACHINE = {
    "name": "press-1",
    "line": "line-1",
    "type": "hydraulic press",
    "sensors": [{"name": "oil_temp", "unit": "degC"}, {"name": "pressure", "unit": "bar"}],
}


def _press_model(folder: Path, sensors=("oil_temp", "pressure")) -> Path:
    """A pca table model as `linewatch sensors fit` writes it, of a press whose two sensors move together."""
    import numpy as np

    from linewatch.sensors.methods import METHODS
    from linewatch.sensors.saving import save

    rng = np.random.default_rng(0)
    load = np.sin(np.arange(1500) / 40.0)
    x = np.c_[70 + 3 * load + rng.normal(0, 0.1, 1500), 3 + 0.3 * load + rng.normal(0, 0.01, 1500)]
    det = METHODS.create("pca", windows=[10]).fit([(x, np.arange(1500.0))], sensors=list(sensors))
    return save(det, folder, {"rows": 1500})


def test_a_machine_model_travels_through_the_registry(reg_api, registry_uri, tmp_path):
    """A sensors table model pushed to the registry (`linewatch registry push`) is imported for a machine as its next
    version, ready; published back from the service under another name, it imports into a second machine. Refused:
    a version the registry lacks (404), a model of other sensors (409), a streaming detector's checkpoint to publish
    (409, it is no engine model folder)."""
    from linewatch.core import modelregistry

    c = reg_api.client
    eng, viewer = reg_api.user("engineer"), reg_api.user("viewer")
    assert c.post("/api/v1/lines", json={"name": "line-1"}, headers=eng).status_code == 201
    assert c.post("/api/v1/machines", json=MACHINE, headers=eng).status_code == 201
    modelregistry.push(_press_model(tmp_path / "m"), "press-oil", registry_uri, alias="production")
    modelregistry.push(_press_model(tmp_path / "other", ("oil_temp", "spindle")), "spindle", registry_uri)
    url = "/api/v1/machines/press-1/models/registry-import"

    assert c.post(url, json={"ref": "nosuch@production"}, headers=eng).status_code == 404
    r = c.post(url, json={"ref": "spindle"}, headers=eng)
    assert r.status_code == 409 and "spindle" in r.json()["detail"]
    assert c.post(url, json={"ref": "press-oil@production"}, headers=viewer).status_code == 403
    r = c.post(url, json={"ref": "press-oil@production"}, headers=eng)
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["status"] == "ready" and model["method"] == "pca" and model["version"] == 1
    assert model["source"]["registry"]["name"] == "press-oil" and model["source"]["registry"]["version"] == 1
    assert c.get("/api/v1/machines/press-1/models", headers=viewer).json()[0]["id"] == model["id"]

    r = c.post(f"/api/v1/machine-models/{model['id']}/publish", json={"name": "press-oil-line2"}, headers=eng)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "press-oil-line2" and r.json()["version"] == 1
    assert c.post("/api/v1/machines", json={**MACHINE, "name": "press-2"}, headers=eng).status_code == 201
    r = c.post("/api/v1/machines/press-2/models/registry-import", json={"ref": "press-oil-line2/1"}, headers=eng)
    assert r.status_code == 201 and r.json()["machine"] == "press-2" and r.json()["params"]["windows"] == [10]

    # a stream detector's model is its checkpoint, not an engine's model folder: not for the registry
    rows = "time,oil_temp,pressure\n" + "\n".join(f"{1e9 + i},{70 + i % 3},{3 + i % 2}" for i in range(400))
    r = c.post(
        "/api/v1/machines/press-1/models/train-file",
        files={"file": ("normal.csv", rows.encode())},
        data={"params": '{"learning_period": 100}'},
        headers=eng,
    )
    job = _wait(reg_api, r.json()["id"], eng)
    assert job["status"] == "succeeded", job
    stream_id = job["result"]["machine_model_id"]
    r = c.post(f"/api/v1/machine-models/{stream_id}/publish", json={"name": "stream"}, headers=eng)
    assert r.status_code == 409 and "streaming checkpoint" in r.json()["detail"]


def test_machine_models_and_the_registry_without_one(api, tmp_path):
    eng = api.user("engineer")
    c = api.client
    assert c.post("/api/v1/lines", json={"name": "line-1"}, headers=eng).status_code == 201
    assert c.post("/api/v1/machines", json=MACHINE, headers=eng).status_code == 201
    r = c.post("/api/v1/machines/press-1/models/registry-import", json={"ref": "press-oil"}, headers=eng)
    assert r.status_code == 409 and "LINEWATCH_REGISTRY_URI" in r.json()["detail"]
