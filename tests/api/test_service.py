import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linewatch.vision.runtime import OnnxModel


def _train(api, good_zip, headers) -> int:
    c = api.client
    ds = c.post("/api/v1/datasets", json={"name": "washers"}, headers=headers).json()
    up = c.post(
        f"/api/v1/datasets/{ds['id']}/images",
        files=[("files", ("good.zip", good_zip, "application/zip"))],
        headers=headers,
    )
    assert up.status_code == 200, up.text
    assert up.json()["added"] == 12
    job = c.post("/api/v1/jobs/train", json={"dataset_id": ds["id"], "image_size": 64}, headers=headers)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    seen = []
    for _ in range(600):
        j = c.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        seen.append(j["progress"])
        if j["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert j["status"] == "succeeded", j
    assert seen == sorted(seen)
    return j["result"]["model_id"]


def test_train_activate_inspect_review(api, good_zip, synthetic, tmp_path):
    c = api.client
    eng = api.user("engineer")
    op = api.user("operator")
    model_id = _train(api, good_zip, eng)
    m = c.get(f"/api/v1/models/{model_id}", headers=eng).json()
    assert m["status"] == "ready" and m["threshold"] is not None
    assert c.post("/api/v1/stations", json={"name": "cam1"}, headers=eng).status_code == 201
    assert c.post(f"/api/v1/models/{model_id}/activate", json={"station": "cam1"}, headers=eng).status_code == 200
    files = [
        ("files", ("spot.png", (synthetic / "test" / "spot" / "000.png").read_bytes(), "image/png")),
        ("files", ("good.png", (synthetic / "test" / "good" / "000.png").read_bytes(), "image/png")),
    ]
    r = c.post("/api/v1/stations/cam1/inspect", files=files, headers=op)
    assert r.status_code == 200, r.text
    results = r.json()
    assert [x["filename"] for x in results] == ["spot.png", "good.png"]
    assert results[0]["score"] > results[1]["score"]
    first = results[0]
    img = c.get(first["image_url"], headers=op)
    assert img.status_code == 200 and img.content == (synthetic / "test" / "spot" / "000.png").read_bytes()
    heat = c.get(first["heatmap_url"], headers=op)
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"
    heat_img = Image.open(io.BytesIO(heat.content))
    assert heat_img.mode == "RGB" and max(heat_img.size) <= 256
    over = c.get(first["overlay_url"], headers=op)
    assert over.status_code == 200 and over.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(over.content)).size == (first["width"], first["height"])
    page = c.get("/api/v1/inspections", params={"station": "cam1", "limit": 1}, headers=op).json()
    assert len(page["items"]) == 1 and page["next_cursor"] is not None
    page2 = c.get("/api/v1/inspections", params={"station": "cam1", "cursor": page["next_cursor"]}, headers=op).json()
    assert {x["id"] for x in page["items"] + page2["items"]} == {x["id"] for x in results}
    rv = c.post(
        f"/api/v1/inspections/{first['id']}/reviews", json={"verdict": "anomalous", "defect_type": "spot"}, headers=op
    )
    assert rv.status_code == 201, rv.text
    assert c.get(f"/api/v1/inspections/{first['id']}", headers=op).json()["defect_type"] == "spot"
    spots = c.get("/api/v1/inspections", params={"defect_type": "spot"}, headers=op).json()["items"]
    assert [x["id"] for x in spots] == [first["id"]]
    unreviewed = c.get("/api/v1/inspections", params={"reviewed": False}, headers=op).json()["items"]
    assert [x["id"] for x in unreviewed] == [results[1]["id"]]
    onnx = c.get(f"/api/v1/models/{model_id}/export", headers=op)
    assert onnx.status_code == 200 and len(onnx.content) > 1000
    # the bundle: unzipped, ONNX Runtime alone gives the service's verdict and score for the same image
    bundle = c.get(f"/api/v1/models/{model_id}/bundle", headers=op)
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as z:
        z.extractall(tmp_path / "bundle")
    runtime = OnnxModel(tmp_path / "bundle")
    assert runtime.has_embeddings
    again = runtime.predict([synthetic / "test" / "spot" / "000.png"])[0]
    assert again.verdict == first["verdict"] and again.score == pytest.approx(first["score"], rel=1e-5)
    assert c.get("/api/v1/models/999999/bundle", headers=op).status_code == 404
    metrics = c.get("/metrics").text
    assert 'linewatch_inspections_total{station="cam1"' in metrics

    # the station's model is kept for a moment between images; an activation applies to the very next one
    from linewatch.store.tables import ModelVersion

    with api.ctx.sessions() as s, s.begin():
        old = s.get(ModelVersion, model_id)
        copy = ModelVersion(
            name=old.name,
            method=old.method,
            backbone=old.backbone,
            image_size=old.image_size,
            status="ready",
            threshold=old.threshold,
            path=old.path,
        )
        s.add(copy)
        s.flush()
        copy_id = copy.id
    assert c.post(f"/api/v1/models/{copy_id}/activate", json={"station": "cam1"}, headers=eng).status_code == 200
    again = c.post("/api/v1/stations/cam1/inspect", files=files[:1], headers=op)
    assert again.status_code == 200 and again.json()[0]["model_id"] == copy_id
    assert c.post("/api/v1/stations/cam1/rollback", headers=eng).status_code == 200
    assert c.post("/api/v1/stations/cam1/inspect", files=files[:1], headers=op).json()[0]["model_id"] == model_id

    # a phone's photo: the sensor's pixels and an EXIF orientation; the service measures, maps and boxes the photo
    # upright, as the dashboard's browser shows it
    upright = Image.open(synthetic / "test" / "good" / "000.png").convert("RGB").crop((0, 0, 256, 160))
    upright.paste((0, 0, 0), (16, 16, 80, 64))  # a dark blotch, top left
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to show
    sent = {}
    phone = upright.transpose(Image.Transpose.ROTATE_90)
    for name, img, fmt, kw in (("upright.png", upright, "PNG", {}), ("phone.jpg", phone, "JPEG", {"exif": exif})):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        r = c.post("/api/v1/stations/cam1/inspect", files=[("files", (name, buf.getvalue()))], headers=op)
        assert r.status_code == 200, r.text
        got = r.json()[0]
        assert (got["width"], got["height"]) == (256, 160)
        heat = np.asarray(Image.open(io.BytesIO(c.get(got["heatmap_url"], headers=op).content)).convert("L"), float)
        over = Image.open(io.BytesIO(c.get(got["overlay_url"], headers=op).content))
        assert over.size == (256, 160)
        sent[name] = (got, heat)
    (ref, ref_heat), (phone, phone_heat) = sent["upright.png"], sent["phone.jpg"]
    assert phone["score"] == pytest.approx(ref["score"], rel=0.1)
    assert phone_heat.shape == ref_heat.shape and np.corrcoef(phone_heat.ravel(), ref_heat.ravel())[0, 1] > 0.9


def test_roles_are_enforced(api):
    c = api.client
    viewer, op, eng, adm = (api.user(r) for r in ("viewer", "operator", "engineer", "admin"))
    assert c.get("/api/v1/inspections").status_code == 401
    assert c.get("/api/v1/inspections", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert c.get("/api/v1/inspections", headers=viewer).status_code == 200
    assert c.post("/api/v1/stations", json={"name": "s1"}, headers=viewer).status_code == 403
    assert c.post("/api/v1/stations", json={"name": "s1"}, headers=op).status_code == 403
    assert c.post("/api/v1/stations", json={"name": "s1"}, headers=eng).status_code == 201
    assert c.post("/api/v1/datasets", json={"name": "d"}, headers=op).status_code == 403
    assert c.post("/api/v1/jobs/train", json={"dataset_id": 1}, headers=viewer).status_code == 403
    assert (
        c.post(
            "/api/v1/stations/s1/inspect", files=[("files", ("a.png", b"x", "image/png"))], headers=viewer
        ).status_code
        == 403
    )
    assert c.get("/api/v1/users", headers=eng).status_code == 403
    assert (
        c.post(
            "/api/v1/users", json={"name": "x", "password": "long-enough", "role": "viewer"}, headers=eng
        ).status_code
        == 403
    )
    assert (
        c.post(
            "/api/v1/users", json={"name": "x", "password": "long-enough", "role": "viewer"}, headers=adm
        ).status_code
        == 201
    )
    key = c.post("/api/v1/api-keys", json={"name": "cam", "role": "operator"}, headers=adm).json()
    assert key["key"].startswith("lwk_")
    listed = c.get("/api/v1/api-keys", headers=adm).json()
    assert "key" not in listed[0]
    kh = {"X-API-Key": key["key"]}
    assert c.get("/api/v1/auth/me", headers=kh).json()["role"] == "operator"
    assert c.post("/api/v1/datasets", json={"name": "d"}, headers=kh).status_code == 403
    assert c.delete(f"/api/v1/api-keys/{key['id']}", headers=adm).status_code == 204
    assert c.get("/api/v1/auth/me", headers=kh).status_code == 401
    assert c.post("/api/v1/auth/login", json={"username": "admin-user", "password": "wrong"}).status_code == 401


def test_bad_input_gets_clear_4xx(api, good_zip):
    c = api.client
    eng, op = api.user("engineer"), api.user("operator")
    assert (
        c.post("/api/v1/stations/nope/inspect", files=[("files", ("a.png", b"x", "image/png"))], headers=op).status_code
        == 404
    )
    c.post("/api/v1/stations", json={"name": "cam"}, headers=eng)
    r = c.post("/api/v1/stations/cam/inspect", files=[("files", ("a.png", b"x", "image/png"))], headers=op)
    assert r.status_code == 409 and "no active model" in r.json()["detail"]
    bad = c.post("/api/v1/stations", content=b"{not json", headers={**eng, "content-type": "application/json"})
    assert bad.status_code == 422
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
    r = c.post(
        f"/api/v1/datasets/{ds['id']}/images", files=[("files", ("a.png", b"garbage", "image/png"))], headers=eng
    )
    assert r.status_code == 200 and r.json()["added"] == 0 and "not a readable image" in r.json()["skipped"][0]
    r = c.post("/api/v1/jobs/train", json={"dataset_id": ds["id"]}, headers=eng)
    job_id = r.json()["id"]
    for _ in range(100):
        j = c.get(f"/api/v1/jobs/{job_id}", headers=eng).json()
        if j["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    assert j["status"] == "failed" and "at least 5" in j["error"]
    assert c.post("/api/v1/models/999/activate", json={"station": "cam"}, headers=eng).status_code == 404
    assert c.get("/api/v1/inspections/12345", headers=op).status_code == 404
    huge = c.post("/api/v1/datasets/1/images", content=b"x", headers={**eng, "content-length": str(10**12)})
    assert huge.status_code == 413


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_websocket_pushes_inspections_and_job_progress(api, good_zip, synthetic):
    c = api.client
    eng = api.user("engineer")
    token = eng["Authorization"].split()[1]
    with c.websocket_connect(f"/api/v1/events?token={token}") as ws:
        assert ws.receive_json()["type"] == "hello"
        model_id = _train(api, good_zip, eng)
        kinds = set()
        while True:
            ev = ws.receive_json()
            kinds.add(ev["type"])
            if ev["type"] == "job" and ev["job"]["status"] == "succeeded":
                break
        assert "job" in kinds
        c.post("/api/v1/stations", json={"name": "cam"}, headers=eng)
        c.post(f"/api/v1/models/{model_id}/activate", json={"station": "cam"}, headers=eng)
        ev = ws.receive_json()
        assert ev == {"type": "model_activated", "station": "cam", "model_id": model_id, "previous_model_id": None}
        files = [("files", ("x.png", (synthetic / "test" / "chip" / "000.png").read_bytes(), "image/png"))]
        ins = c.post("/api/v1/stations/cam/inspect", files=files, headers=api.user("operator")).json()[0]
        ev = ws.receive_json()
        assert ev["type"] == "inspection" and ev["inspection"]["id"] == ins["id"]
        c.post(
            f"/api/v1/inspections/{ins['id']}/reviews",
            json={"verdict": "anomalous", "defect_type": "chip"},
            headers=api.user("operator"),
        )
        ev = ws.receive_json()
        assert ev == {"type": "review", "inspection_id": ins["id"], "verdict": "anomalous", "defect_type": "chip"}
        c.delete(f"/api/v1/inspections/{ins['id']}", headers=eng)
        ev = ws.receive_json()
        assert ev["type"] == "inspection_deleted" and ev["inspection_id"] == ins["id"] and "vectors" not in ev


def test_websocket_refuses_without_auth(api):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect), api.client.websocket_connect("/api/v1/events") as ws:
        ws.receive_json()


def _dataset(c, eng: dict, name: str, zip_bytes: bytes) -> tuple[int, dict]:
    """A new dataset with a zip uploaded into it: its id and the upload's answer."""
    ds = c.post("/api/v1/datasets", json={"name": name}, headers=eng).json()
    up = c.post(
        f"/api/v1/datasets/{ds['id']}/images",
        files=[("files", (f"{name}.zip", zip_bytes, "application/zip"))],
        headers=eng,
    )
    assert up.status_code == 200, up.text
    return ds["id"], up.json()


def _trained(c, eng: dict, body: dict) -> int:
    """Queue a training with ``body``, wait for it to succeed: the new version's id."""
    job = c.post("/api/v1/jobs/train", json=body, headers=eng)
    assert job.status_code == 202, job.text
    for _ in range(600):
        j = c.get(f"/api/v1/jobs/{job.json()['id']}", headers=eng).json()
        if j["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert j["status"] == "succeeded", j
    return j["result"]["model_id"]


def _train_evaluated(c, eng: dict, train_id: int, test_id: int) -> tuple[int, dict]:
    """Train on one dataset, evaluate on another: the new version's id and metrics."""
    model_id = _trained(c, eng, {"dataset_id": train_id, "test_dataset_id": test_id, "image_size": 64})
    return model_id, c.get(f"/api/v1/models/{model_id}", headers=eng).json()["metrics"]


def _test_zip(synthetic) -> bytes:
    """A labelled test set in the MVTec layout: 3 good images and 3 of each defect type (the folder names are the
    labels), 2 spot masks."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for d in sorted((synthetic / "test").iterdir()):
            for p in sorted(d.iterdir())[:3]:
                z.write(p, f"washer/test/{d.name}/{p.name}")
        for m in sorted((synthetic / "ground_truth" / "spot").iterdir())[:2]:
            z.write(m, f"washer/ground_truth/spot/{m.name}")
    return buf.getvalue()


def test_training_with_a_labelled_test_set_stores_its_metrics(api, good_zip, synthetic):
    c = api.client
    eng = api.user("engineer")
    train_id, _ = _dataset(c, eng, "train", good_zip)
    test_id, up = _dataset(c, eng, "test", _test_zip(synthetic))
    assert up["added"] == 12  # 3 good + 3 of each of the 3 defect types
    assert up["masks"] == 2  # the spot masks in the zip went with their images
    one = (synthetic / "test" / "chip" / "001.png").read_bytes()
    r = c.post(
        f"/api/v1/datasets/{test_id}/images",
        files=[("files", ("c.png", one, "image/png"))],
        data={"label": "chip"},
        headers=eng,
    )
    assert r.json()["added"] == 1
    bad = c.post("/api/v1/jobs/train", json={"dataset_id": train_id, "test_dataset_id": 999}, headers=eng)
    assert bad.status_code == 404
    model_id, m = _train_evaluated(c, eng, train_id, test_id)
    assert m["images"] == 13 and m["defective"] == 10
    assert m["image_auroc"] > 0.8
    assert set(m["per_type"]) == {"chip", "scratch", "spot"} and m["per_type"]["chip"]["images"] == 4
    assert m["training"]["train_images"] > 0
    assert "test_scores" not in m  # long: its own endpoint
    scores = c.get(f"/api/v1/models/{model_id}/test-scores", headers=eng).json()
    assert len(scores["items"]) == 13 and scores["threshold"] is not None
    assert {x["label"] for x in scores["items"]} == {"good", "chip", "scratch", "spot"}
    good = [x["score"] for x in scores["items"] if x["label"] == "good"]
    bad = [x["score"] for x in scores["items"] if x["label"] != "good"]
    assert sum(b > g for b in bad for g in good) / (len(bad) * len(good)) == pytest.approx(m["image_auroc"], abs=1e-4)


def test_the_bank_search_is_chosen_for_the_services_cpu_not_the_workers(api, good_zip, monkeypatch):
    """A cluster's worker may run on another kind of CPU than the service that scores the model: ``search="auto"`` is
    resolved when the training is queued, on the service, and the manifest says so; an explicit search stays."""
    from linewatch.services import training
    from linewatch.vision.cpu import resolve_search

    mine = resolve_search("auto")[0]  # what a fit on this machine (the worker here) would choose by itself
    other = "pca" if mine == "int8" else "int8"
    monkeypatch.setattr(training, "resolve_search", lambda mode: (other, "a CPU of the other kind"))
    c = api.client
    eng = api.user("engineer")
    ds, _ = _dataset(c, eng, "train", good_zip)

    def trained(body: dict) -> tuple[Path, dict]:
        folder = api.ctx.settings.models_dir / str(_trained(c, eng, {"dataset_id": ds, "image_size": 64, **body}))
        return folder, json.loads((folder / "manifest.json").read_text())

    folder, manifest = trained({})
    assert manifest["hyperparameters"]["search"] == other
    assert manifest["training"]["search"] == {
        "asked": "auto",
        "chosen": other,
        "reason": "the service's CPU: a CPU of the other kind",
    }
    assert OnnxModel(folder).search == other  # the export searches as the service's CPU prefers
    _, manifest = trained({"search": "exact"})
    assert manifest["hyperparameters"]["search"] == "exact"
    assert "search" not in manifest["training"]


def test_a_test_set_with_masks_gives_pixel_metrics(api, good_zip, synthetic):
    c = api.client
    eng = api.user("engineer")
    train_id, _ = _dataset(c, eng, "train", good_zip)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the whole MVTec-layout test set with its ground truth
        for d in sorted((synthetic / "test").iterdir()):
            for p in sorted(d.iterdir()):
                z.write(p, f"test/{d.name}/{p.name}")
        for m in sorted((synthetic / "ground_truth").rglob("*.png")):
            z.write(m, f"ground_truth/{m.parent.name}/{m.name}")
    test_id, up = _dataset(c, eng, "test", buf.getvalue())
    defective = sum(1 for d in (synthetic / "test").iterdir() if d.name != "good" for _ in d.iterdir())
    assert up["masks"] == defective and up["skipped"] == []
    _, m = _train_evaluated(c, eng, train_id, test_id)
    assert 0.5 < m["pixel_auroc"] <= 1.0 and 0.0 < m["aupro"] <= 1.0


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
def test_the_same_training_twice_is_refused_and_progress_names_its_phase(api, good_zip):
    c = api.client
    eng = api.user("engineer")
    ds = c.post("/api/v1/datasets", json={"name": "washers"}, headers=eng).json()
    up = c.post(
        f"/api/v1/datasets/{ds['id']}/images", files=[("files", ("g.zip", good_zip, "application/zip"))], headers=eng
    )
    assert up.status_code == 200
    body = {"dataset_id": ds["id"], "image_size": 64}
    first = c.post("/api/v1/jobs/train", json=body, headers=eng).json()
    again = c.post("/api/v1/jobs/train", json=body, headers=eng)
    assert again.status_code == 409 and f"job #{first['id']}" in again.json()["detail"]
    assert [j["id"] for j in c.get("/api/v1/jobs", params={"active": True}, headers=eng).json()] == [first["id"]]
    other = c.post("/api/v1/jobs/train", json={**body, "image_size": 128}, headers=eng)  # another model: queued
    assert other.status_code == 202
    messages, progress = [], []
    for _ in range(1200):
        j = c.get(f"/api/v1/jobs/{first['id']}", headers=eng).json()
        messages.append(j["message"])
        progress.append(j["progress"])
        if j["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert j["status"] == "succeeded", j
    assert progress == sorted(progress)
    from linewatch.services.jobs import JOB_KINDS

    phases = [m for m in messages if m not in ("queued", "started", "done")]
    names = tuple(JOB_KINDS["train"].names.values())
    assert phases and all(m.startswith(names) for m in phases), set(messages)  # named phases
    c.post(f"/api/v1/jobs/{other.json()['id']}/cancel", headers=eng)


def _job_done(c, eng: dict, job_id: int) -> dict:
    for _ in range(600):
        j = c.get(f"/api/v1/jobs/{job_id}", headers=eng).json()
        if j["status"] not in ("queued", "running"):
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end: {j}")


def test_a_recalibrated_version_is_a_new_version_with_its_error_rates_at_the_new_threshold(
    api, good_zip, synthetic, tmp_path
):
    from linewatch.vision.recalibration import recalibrate

    c = api.client
    eng = api.user("engineer")
    train_id, _ = _dataset(c, eng, "train", good_zip)
    test_id, _ = _dataset(c, eng, "test", _test_zip(synthetic))
    model_id, before = _train_evaluated(c, eng, train_id, test_id)
    old = c.get(f"/api/v1/models/{model_id}", headers=eng).json()
    manifest = (Path(api.ctx.settings.models_dir) / str(model_id) / "manifest.json").read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # good parts of today: the training folder's images not trained on
        for p in sorted((synthetic / "train" / "good").iterdir())[12:]:
            z.write(p, f"good/{p.name}")
    today_id, _ = _dataset(c, eng, "today", buf.getvalue())

    r = c.post(
        f"/api/v1/models/{model_id}/calibrate", json={"dataset_id": today_id, "false_alarm_rate": 0.2}, headers=eng
    )
    assert r.status_code == 202 and r.json()["kind"] == "calibrate", r.text
    j = _job_done(c, eng, r.json()["id"])
    assert j["status"] == "succeeded" and j["result"]["images"] == 12, j
    new_id = j["result"]["model_id"]
    new = c.get(f"/api/v1/models/{new_id}", headers=eng).json()
    assert (
        new["status"] == "ready"
        and new_id != model_id
        and new["name"].endswith("(recalibrated on good images of today, 20 % false alarms)")
    )
    m = new["metrics"]
    assert m["calibration"]["from_model_id"] == model_id and m["calibration"]["source"] == "images"
    assert m["calibration"]["after"]["false_alarm_rate"] == 0.2 and new["threshold"] != old["threshold"]
    assert m["image_auroc"] == before["image_auroc"] and m["training"] == before["training"]
    # the error rates at the new threshold, from the per-image test scores the version shares with its parent
    items = c.get(f"/api/v1/models/{new_id}/test-scores", headers=eng).json()
    assert items["threshold"] == new["threshold"] == m["threshold"]
    good = np.array([x["score"] for x in items["items"] if x["label"] == "good"])
    chips = np.array([x["score"] for x in items["items"] if x["label"] == "chip"])
    bad = np.array([x["score"] for x in items["items"] if x["label"] != "good"])
    assert m["false_alarm_rate"] == pytest.approx((good >= new["threshold"]).mean())
    assert m["miss_rate"] == pytest.approx((bad < new["threshold"]).mean())
    assert m["per_type"]["chip"]["miss_rate"] == pytest.approx((chips < new["threshold"]).mean())
    # the version recalibrated is as it was; the new one scores with its thresholds
    assert c.get(f"/api/v1/models/{model_id}", headers=eng).json()["threshold"] == old["threshold"]
    assert (Path(api.ctx.settings.models_dir) / str(model_id) / "manifest.json").read_bytes() == manifest
    assert OnnxModel(Path(api.ctx.settings.models_dir) / str(new_id)).calibration_.image_threshold == new["threshold"]
    assert c.post("/api/v1/stations", json={"name": "cam"}, headers=eng).status_code == 201
    assert c.post(f"/api/v1/models/{new_id}/activate", json={"station": "cam"}, headers=eng).status_code == 200

    # another rate from the scores the new version keeps (today's images): as the library sets it
    r = c.post(
        f"/api/v1/models/{new_id}/calibrate", json={"false_alarm_rate": 0.05, "name": "fewer alarms"}, headers=eng
    )
    j = _job_done(c, eng, r.json()["id"])
    assert j["status"] == "succeeded", j
    third = c.get(f"/api/v1/models/{j['result']['model_id']}", headers=eng).json()
    expected = recalibrate(Path(api.ctx.settings.models_dir) / str(new_id), false_alarm_rate=0.05, out=tmp_path / "m")
    assert third["name"] == "fewer alarms" and third["threshold"] == pytest.approx(expected.after.image_threshold)
    assert third["metrics"]["calibration"]["source"] == "kept scores"
    audit = c.get("/api/v1/audit", headers=api.user("admin")).json()
    assert [e["target"] for e in audit["items"] if e["action"] == "model.calibrate"] == [
        f"model {new_id}",
        f"model {model_id}",
    ]


def test_recalibration_refusals(api, good_zip, monkeypatch):
    c = api.client
    eng = api.user("engineer")
    model_id = _train(api, good_zip, eng)
    url = f"/api/v1/models/{model_id}/calibrate"
    assert c.post("/api/v1/models/999/calibrate", json={}, headers=eng).status_code == 404
    assert c.post(url, json={"dataset_id": 999}, headers=eng).status_code == 404
    for rate in (0, 0.5, -1, True, "1e400", "a lot"):
        assert c.post(url, json={"false_alarm_rate": rate}, headers=eng).status_code == 422, rate
    assert c.post(url, json={"extra": 1}, headers=eng).status_code == 422
    assert c.post(url, json={}, headers=api.user("operator")).status_code == 403
    # a version saved before the held-out scores were kept needs a dataset
    path = Path(api.ctx.settings.models_dir) / str(model_id) / "manifest.json"
    m = json.loads(path.read_text())
    kept = m.pop("calibration_scores")
    path.write_text(json.dumps(m))
    r = c.post(url, json={"false_alarm_rate": 0.1}, headers=eng)
    assert r.status_code == 409 and "give a dataset of good images" in r.json()["detail"]
    m["calibration_scores"] = kept
    path.write_text(json.dumps(m))
    # the same recalibration twice while the first is queued: refused, one job and one new version
    monkeypatch.setattr(api.ctx.jobs, "submit", lambda job_id: None)
    first = c.post(url, json={"false_alarm_rate": 0.1}, headers=eng)
    assert first.status_code == 202
    again = c.post(url, json={"false_alarm_rate": 0.1}, headers=eng)
    assert again.status_code == 409 and f"#{first.json()['id']}" in again.json()["detail"]
    calibrating = [x for x in c.get("/api/v1/models", headers=eng).json() if x["status"] == "calibrating"]
    assert len(calibrating) == 1
    r = c.post(f"/api/v1/models/{calibrating[0]['id']}/calibrate", json={}, headers=eng)
    assert r.status_code == 409 and "not ready" in r.json()["detail"]


def test_a_stations_known_good_parts_in_a_window_set_the_thresholds(api, good_zip, synthetic):
    """After a change of light an engineer runs known-good parts through a station, then recalibrates on them: the
    window's inspections, less those a reviewer marked defective and repeated photos."""
    c = api.client
    eng, op = api.user("engineer"), api.user("operator")
    model_id = _train(api, good_zip, eng)
    assert c.post("/api/v1/stations", json={"name": "cam1"}, headers=eng).status_code == 201
    assert c.post(f"/api/v1/models/{model_id}/activate", json={"station": "cam1"}, headers=eng).status_code == 200
    good = sorted((synthetic / "train" / "good").iterdir())[12:20] + sorted((synthetic / "test" / "good").iterdir())
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in good]
    inspected = c.post("/api/v1/stations/cam1/inspect", files=files, headers=op).json()
    assert len(inspected) == len(good)
    again = c.post("/api/v1/stations/cam1/inspect", files=files[:1], headers=op).json()[0]  # a repeated photo
    assert again["duplicate_of"] == inspected[0]["id"]
    r = c.post(f"/api/v1/inspections/{inspected[1]['id']}/reviews", json={"verdict": "anomalous"}, headers=op)
    assert r.status_code == 201

    # one stored photo damaged since (a disk fault): left out and named once
    from linewatch.store.tables import Inspection

    with api.ctx.sessions() as s:
        damaged = s.get(Inspection, inspected[2]["id"]).image_sha256
    api.ctx.blobs._path(damaged).write_bytes(b"not a png any more")

    url = f"/api/v1/models/{model_id}/calibrate"
    r = c.post(url, json={"station": "cam1", "false_alarm_rate": 0.1}, headers=eng)  # the last hour
    assert r.status_code == 202, r.text
    j = _job_done(c, eng, r.json()["id"])
    assert j["status"] == "succeeded", j
    # the repeat and the part reviewed defective left out, the damaged photo skipped
    assert j["result"]["images"] == len(good) - 2 and j["result"]["skipped"] == 1
    new = c.get(f"/api/v1/models/{j['result']['model_id']}", headers=eng).json()
    cal = new["metrics"]["calibration"]
    assert cal["station"] == "cam1" and cal["source"] == "images" and cal["images"] == len(good) - 2
    assert len(cal["skipped"]) == 1
    assert "recalibrated on cam1's parts of " in new["name"] and new["name"].endswith("UTC, 10 % false alarms)")
    # the thresholds are those of the inspected photos' raw scores, as the library sets them
    from linewatch.vision.thresholds import calibrate

    kept = json.loads((Path(api.ctx.settings.models_dir) / str(new["id"]) / "manifest.json").read_text())
    expected = calibrate(
        np.array(kept["calibration_scores"]["image"]), np.array(kept["calibration_scores"]["peak"]), 0.1
    )
    assert new["threshold"] == pytest.approx(expected.image_threshold)
    scored = {x["score"] for i, x in enumerate(inspected) if i not in (1, 2)}
    assert sorted(kept["calibration_scores"]["image"]) == pytest.approx(sorted(scored), rel=1e-4)

    # refusals: no such station, a window without parts, two sources, a window without a station, an empty window
    assert c.post(url, json={"station": "cam9"}, headers=eng).status_code == 404
    r = c.post(url, json={"station": "cam1", "until": "2020-01-01T00:00:00Z"}, headers=eng)
    assert (
        r.status_code == 409 and "inspected 0 parts from 2019-12-31 23:00 to 2020-01-01 00:00 UTC" in r.json()["detail"]
    )
    for body, says in (
        ({"station": "cam1", "dataset_id": 1}, "not both"),
        ({"since": "2026-01-01T00:00:00Z"}, "give the station too"),
        ({"station": "cam1", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "before until"),
    ):
        r = c.post(url, json=body, headers=eng)
        assert r.status_code == 400 and says in r.json()["detail"], (body, r.text)
    assert c.post(url, json={"station": "cam1", "since": 12}, headers=eng).status_code == 422


def test_a_stations_window_runs_until_now_unless_its_end_is_given():
    import datetime as dt

    from linewatch.services.calibrating import _window

    start = dt.datetime(2026, 12, 6, 8, tzinfo=dt.UTC)
    since, until = _window(start, None)
    assert since == start and dt.datetime.now(dt.UTC) - until < dt.timedelta(seconds=5)
    assert _window(None, start) == (start - dt.timedelta(hours=1), start)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_a_datasets_inspection_area_trains_into_its_models(api, good_zip, synthetic):
    """The dataset's mask goes into the models trained on it from then on (their map is 0 outside it, the manifest
    keeps it); a mask of another framing, one that inspects nothing or no image is a 400 that names why; a model
    trained before keeps inspecting the whole photo."""
    c = api.client
    eng = api.user("engineer")
    ds_id, _ = _dataset(c, eng, "framed", good_zip)
    before = _trained(c, eng, {"dataset_id": ds_id, "image_size": 64, "method": "patchcore"})
    with Image.open(next((synthetic / "train" / "good").iterdir())) as im:
        w, h = im.size
    mask = np.full((h, w), 255, np.uint8)
    mask[:, : w // 2] = 0  # the left half ignored
    bad = [
        (_png(np.full((h, 2 * w), 255, np.uint8)), "width / height 2.00"),
        (_png(np.zeros((h, w), np.uint8)), "no pixel is inspected"),
        (b"not an image", "not a readable image"),
    ]
    for data, why in bad:
        r = c.put(f"/api/v1/datasets/{ds_id}/area", files={"file": ("m.png", data, "image/png")}, headers=eng)
        assert r.status_code == 400 and why in r.json()["detail"], r.text
    assert c.get(f"/api/v1/datasets/{ds_id}/area", headers=eng).status_code == 404
    viewer = api.user("viewer")
    put = c.put(f"/api/v1/datasets/{ds_id}/area", files={"file": ("m.png", _png(mask), "image/png")}, headers=viewer)
    assert put.status_code == 403
    put = c.put(f"/api/v1/datasets/{ds_id}/area", files={"file": ("m.png", _png(mask), "image/png")}, headers=eng)
    assert put.status_code == 200, put.text
    assert put.json()["area_inspected"] == pytest.approx(0.5, abs=0.01)
    assert c.get(f"/api/v1/datasets/{ds_id}", headers=viewer).json()["area_inspected"] == put.json()["area_inspected"]
    kept = np.asarray(Image.open(io.BytesIO(c.get(f"/api/v1/datasets/{ds_id}/area", headers=viewer).content)))
    assert kept.shape == (h, w) and (kept[:, : w // 2] == 0).all() and (kept[:, w // 2 :] == 255).all()
    after = _trained(c, eng, {"dataset_id": ds_id, "image_size": 64})  # the default method, combined
    info = c.get(f"/api/v1/models/{after}", headers=eng).json()["metrics"]["training"]
    assert info["inspect_area"]["inspected"] == pytest.approx(0.5, abs=0.02)
    assert "inspect_area" not in c.get(f"/api/v1/models/{before}", headers=eng).json()["metrics"]["training"]
    # the model scores nothing in the left half, as exported
    model_dir = Path(api.ctx.settings.models_dir) / str(after)
    assert (model_dir / "inspect_area.png").is_file()
    photo = next((synthetic / "test").glob("*/*.png"))
    (pred,) = OnnxModel(model_dir).predict([photo])
    assert float(pred.anomaly_map[:, : w // 2 - w // 16].max()) == 0.0
    # activated on a station, its inspections' overlays grey the half it does not inspect
    assert c.post("/api/v1/stations", json={"name": "framed"}, headers=eng).status_code == 201
    assert c.post(f"/api/v1/models/{after}/activate", json={"station": "framed"}, headers=eng).status_code == 200
    op = api.user("operator")
    files = [("files", ("p.png", photo.read_bytes(), "image/png"))]
    (seen,) = c.post("/api/v1/stations/framed/inspect", files=files, headers=op).json()
    over = np.asarray(Image.open(io.BytesIO(c.get(seen["overlay_url"], headers=op).content)).convert("RGB")).astype(int)
    left, right = over[20:, : w // 2 - 2], over[20:, w // 2 + 2 :]  # below the verdict label
    assert (left[..., 0] == left[..., 1]).all() and (left[..., 1] == left[..., 2]).all()
    assert not ((right[..., 0] == right[..., 1]).all() and (right[..., 1] == right[..., 2]).all())
    # cleared: the whole photo again for the next training
    cleared = c.delete(f"/api/v1/datasets/{ds_id}/area", headers=eng)
    assert cleared.status_code == 200 and cleared.json()["area_inspected"] is None
    assert c.get(f"/api/v1/datasets/{ds_id}/area", headers=eng).status_code == 404
    actions = [e["action"] for e in c.get("/api/v1/audit", headers=api.user("admin")).json()["items"]]
    assert "dataset.area" in actions and "dataset.area_clear" in actions
