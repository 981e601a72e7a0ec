"""Idempotency keys on inspect: a retried request is answered with what was stored, never stored twice."""

import threading

from sqlalchemy import func, select

from linewatch.store.tables import Inspection, InspectRequest


def _setup(api, model_dir, synthetic):
    from linewatch.store.tables import ModelVersion

    eng, op = api.user("engineer"), api.user("operator")
    with api.ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m", method="patchcore", backbone="efficientnet_lite0", image_size=64, status="ready")
        mv.path = str(model_dir.resolve())
        s.add(mv)
    for station in ("cam1", "cam2"):
        assert api.client.post("/api/v1/stations", json={"name": station}, headers=eng).status_code == 201
        r = api.client.post(f"/api/v1/models/{mv.id}/activate", json={"station": station}, headers=eng)
        assert r.status_code == 200, r.text
    images = sorted((synthetic / "test").rglob("*.png"))[:2]
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in images]
    return op, files


def _count(api, model=Inspection) -> int:
    with api.ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_retried_request_is_answered_from_what_was_stored(api, trained, synthetic):
    op, files = _setup(api, trained[1], synthetic)
    c = api.client
    first = c.post("/api/v1/stations/cam1/inspect", files=files, headers={**op, "Idempotency-Key": "req-1"})
    assert first.status_code == 200, first.text
    again = c.post("/api/v1/stations/cam1/inspect", files=files, headers={**op, "Idempotency-Key": "req-1"})
    assert again.status_code == 200 and again.json() == first.json()
    assert _count(api) == 2
    # the key is per station, and a request without a key is always new
    other = c.post("/api/v1/stations/cam2/inspect", files=files, headers={**op, "Idempotency-Key": "req-1"})
    assert other.status_code == 200 and {x["id"] for x in other.json()}.isdisjoint(x["id"] for x in first.json())
    assert c.post("/api/v1/stations/cam1/inspect", files=files, headers=op).status_code == 200
    assert _count(api) == 6 and _count(api, InspectRequest) == 2
    bad = c.post("/api/v1/stations/cam1/inspect", files=files, headers={**op, "Idempotency-Key": "x" * 201})
    assert bad.status_code == 422


def test_copies_sent_at_once_store_one_set(api, trained, synthetic):
    op, files = _setup(api, trained[1], synthetic)
    answers, start = [], threading.Barrier(4)

    def send():
        start.wait()
        r = api.client.post("/api/v1/stations/cam1/inspect", files=files, headers={**op, "Idempotency-Key": "same"})
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [code for code, _ in answers] == [200] * 4
    assert all(body == answers[0][1] for _, body in answers)
    assert _count(api) == 2
