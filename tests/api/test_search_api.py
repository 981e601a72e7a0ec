"""Defect search through the service: vectors stored with each inspection, similar inspections, suggestions,
duplicates, deletion, crash recovery of the index, backfill, and the Qdrant backend."""

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import delete, func, select

from linewatch.services.searching import SearchHub
from linewatch.store.tables import Inspection, InspectionVectors, ModelVersion


class NoReconcile(SearchHub):
    """Serves the index as it is on disk (proves that what is there was written by someone else)."""

    def reconcile(self, progress=None, rebuild=False):
        return {"checked": 0, "added": 0}


@contextlib.contextmanager
def service(data_dir: Path, hub_factory=None, database_url=None):
    """A service on ``data_dir``; ``hub_factory(settings, sessions)`` replaces the search hub."""
    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url)
    ctx = build_context(settings)
    if hub_factory is not None:
        ctx.search = hub_factory(settings, ctx.sessions)
    try:
        with TestClient(create_app(settings, ctx)) as client:
            yield client, ctx
    finally:
        ctx.engine.dispose()


def _login(client, ctx, role: str) -> dict:
    from sqlalchemy.exc import IntegrityError

    from linewatch.services.accounts import create_user

    with contextlib.suppress(IntegrityError), ctx.sessions() as s, s.begin():
        create_user(s, f"{role}-user", "password-" + role, role)
    r = client.post("/api/v1/auth/login", json={"username": f"{role}-user", "password": "password-" + role})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _register(client, ctx, model_dir: Path, eng: dict, station: str = "cam1") -> int:
    with ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m", method="patchcore", backbone="efficientnet_lite0", image_size=128, status="ready")
        mv.path = str(model_dir.resolve())
        s.add(mv)
    assert client.post("/api/v1/stations", json={"name": station}, headers=eng).status_code == 201
    assert client.post(f"/api/v1/models/{mv.id}/activate", json={"station": station}, headers=eng).status_code == 200
    return mv.id


def _defects(synthetic: Path) -> list[Path]:
    return sorted(p for d in ("spot", "scratch", "chip") for p in (synthetic / "test" / d).glob("*.png"))


def _inspect(client, op, paths, station="cam1") -> list[dict]:
    files = [("files", (f"{p.parent.name}-{p.name}", p.read_bytes(), "image/png")) for p in paths]
    r = client.post(f"/api/v1/stations/{station}/inspect", files=files, headers=op)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def running(tmp_path, trained):
    with service(tmp_path / "data") as (client, ctx):
        eng, op, viewer = (_login(client, ctx, r) for r in ("engineer", "operator", "viewer"))
        _register(client, ctx, trained[1], eng)
        yield client, ctx, eng, op, viewer


def test_each_inspection_is_searchable_by_its_defects(running, synthetic, trained):
    client, ctx, eng, op, viewer = running
    paths = _defects(synthetic)
    results = _inspect(client, op, paths)
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InspectionVectors)) == len(paths)
        # each part keeps its photo's brightness beside its whole-image vector: the drift watch's looks
        lit = s.scalars(select(Inspection.brightness).order_by(Inspection.id)).all()
    engine = [p.brightness for p in trained[0].predict(paths, embeddings=False)]
    np.testing.assert_allclose(lit, engine, atol=1e-5)
    first = results[0]
    r = client.get(f"/api/v1/inspections/{first['id']}/similar", params={"k": 4}, headers=viewer)
    assert r.status_code == 200, r.text
    hits = r.json()
    assert len(hits) == 4 and first["id"] not in [h["inspection"]["id"] for h in hits]
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)
    for h in hits:
        assert -1.0 <= h["similarity"] <= 1.0 + 1e-6
        assert h["thumbnail_url"].endswith("/thumbnail")
        if h["region"] is not None:
            assert h["box"] == [h["inspection"]["regions"][h["region"]][k] for k in ("x", "y", "width", "height")]
    thumb = client.get(hits[0]["thumbnail_url"], headers=viewer)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 192
    # filters: a station with nothing, a verdict
    assert (
        client.get(f"/api/v1/inspections/{first['id']}/similar", params={"station": "other"}, headers=viewer).json()
        == []
    )
    good_only = client.get(f"/api/v1/inspections/{first['id']}/similar", params={"verdict": "good"}, headers=viewer)
    assert all(h["inspection"]["verdict"] == "good" for h in good_only.json())
    # search by an uploaded image (not stored)
    before = len(client.get("/api/v1/inspections", headers=viewer).json()["items"])
    up = client.post(
        "/api/v1/search",
        params={"model_station": "cam1", "k": 3},
        files={"file": ("q.png", paths[0].read_bytes(), "image/png")},
        headers=op,
    )
    assert up.status_code == 200, up.text
    assert up.json()[0]["inspection"]["id"] == first["id"]  # the same image is its own best match
    assert up.json()[0]["similarity"] > 0.999
    assert len(client.get("/api/v1/inspections", headers=viewer).json()["items"]) == before
    elsewhere = client.post(
        "/api/v1/search",
        params={"model_station": "cam1", "station": "other"},  # scored by cam1's model, matches from "other" only
        files={"file": ("q.png", paths[0].read_bytes(), "image/png")},
        headers=op,
    )
    assert elsewhere.status_code == 200 and elsewhere.json() == []
    assert (
        client.post(
            "/api/v1/search", params={"model_station": "cam1"}, files={"file": ("q.png", b"junk")}, headers=op
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/v1/search",
            params={"model_station": "cam1"},
            files={"file": ("q.png", paths[0].read_bytes())},
            headers=viewer,
        ).status_code
        == 403
    )


def test_reviewed_defect_types_become_suggestions(running, synthetic):
    client, ctx, eng, op, viewer = running
    paths = _defects(synthetic)
    results = _inspect(client, op, paths)
    kinds = [p.parent.name for p in paths]
    # reviewers label every other image; the rest get suggestions from them
    labelled = list(range(0, len(results), 2))
    for i in labelled:
        r = client.post(
            f"/api/v1/inspections/{results[i]['id']}/reviews",
            json={"verdict": "anomalous", "defect_type": kinds[i]},
            headers=op,
        )
        assert r.status_code == 201
    filtered = client.get(
        f"/api/v1/inspections/{results[1]['id']}/similar", params={"defect_type": kinds[0], "k": 50}, headers=viewer
    ).json()
    assert filtered and {
        kinds[results.index(next(x for x in results if x["id"] == h["inspection"]["id"]))] for h in filtered
    } == {kinds[0]}
    right = total = 0
    for i in range(1, len(results), 2):
        sug = client.get(f"/api/v1/inspections/{results[i]['id']}/suggestion", headers=viewer).json()
        if results[i]["verdict"] == "good":  # nothing found defective: nothing to name
            assert sug["defect_type"] is None
            continue
        assert sug["defect_type"] in set(kinds) and 0 < sug["confidence"] < 1
        assert sum(sug["votes"].values()) > 0 and sug["neighbours"] >= 1
        total += 1
        right += sug["defect_type"] == kinds[i]
    assert right / total > 1 / 3  # better than chance over three kinds (the synthetic kinds are easy)
    unlabelled = client.get(f"/api/v1/inspections/{results[1]['id']}/suggestion", headers=viewer)
    assert unlabelled.status_code == 200


def _reencoded(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_repeated_uploads_are_flagged_and_counted_once(running, synthetic):
    client, ctx, eng, op, viewer = running
    a, b = sorted((synthetic / "test" / "good").glob("*.png"))[:2]
    first = _inspect(client, op, [a])[0]
    assert first["duplicate_of"] is None
    again = _inspect(client, op, [a])[0]  # the same bytes: a stuck camera
    assert again["duplicate_of"] == first["id"] and again["duplicate_kind"] == "exact"
    files = [("files", ("a.jpg", _reencoded(a), "image/jpeg"))]
    near = client.post("/api/v1/stations/cam1/inspect", files=files, headers=op).json()[0]
    assert near["duplicate_of"] == first["id"] and near["duplicate_kind"] == "near"
    other, twice = _inspect(client, op, [b, b])  # twice in one request: the second repeats the first
    assert other["duplicate_of"] is None  # another part
    assert twice["duplicate_of"] == other["id"] and twice["duplicate_kind"] == "exact"
    dups = client.get(f"/api/v1/inspections/{again['id']}/duplicates", headers=viewer).json()
    assert dups["original"]["id"] == first["id"]
    assert [x["id"] for x in dups["repeats"]] == [again["id"], near["id"]]
    stats = client.get("/api/v1/stats", params={"station": "cam1"}, headers=viewer).json()
    assert stats["parts"] == 2 and stats["duplicates"] == 3
    assert stats["good"] + stats["anomalous"] == 2
    metrics = client.get("/metrics").text
    assert 'linewatch_duplicate_inspections_total{kind="exact",station="cam1"} 2.0' in metrics
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('linewatch_inspections_total{station="cam1"')
    ]
    assert sum(counted) == 2
    # deleting the original: the first repeat stands for it, later uploads repeat that one
    assert client.delete(f"/api/v1/inspections/{first['id']}", headers=eng).status_code == 204
    fourth = _inspect(client, op, [a])[0]
    assert fourth["duplicate_of"] == again["id"] and fourth["duplicate_kind"] == "exact"
    # the same image at another station is not a repeat of this one
    assert client.post("/api/v1/stations", json={"name": "cam2"}, headers=eng).status_code == 201
    assert (
        client.post(f"/api/v1/models/{first['model_id']}/activate", json={"station": "cam2"}, headers=eng).status_code
        == 200
    )
    assert _inspect(client, op, [a], station="cam2")[0]["duplicate_of"] is None


def test_deleting_an_inspection_takes_it_out_of_search(running, synthetic):
    client, ctx, eng, op, viewer = running
    results = _inspect(client, op, _defects(synthetic)[:6])
    gone = results[1]["id"]
    assert client.delete(f"/api/v1/inspections/{gone}", headers=op).status_code == 403
    assert client.delete(f"/api/v1/inspections/{gone}", headers=eng).status_code == 204
    assert client.get(f"/api/v1/inspections/{gone}", headers=viewer).status_code == 404
    assert client.delete(f"/api/v1/inspections/{gone}", headers=eng).status_code == 404
    hits = client.get(f"/api/v1/inspections/{results[0]['id']}/similar", params={"k": 10}, headers=viewer).json()
    assert gone not in [h["inspection"]["id"] for h in hits] and len(hits) == 4
    with ctx.sessions() as s:
        space = s.scalar(select(InspectionVectors.space).limit(1))
        dim = s.scalar(select(InspectionVectors.defect_dim).limit(1))
    from linewatch.search.index import point_id

    idx = ctx.search.index(space, dim)
    assert idx.get([point_id(gone, 0), point_id(gone, None)]) == [None, None]


def test_a_crash_before_the_index_is_saved_loses_nothing_from_search(tmp_path, trained, synthetic):
    data = tmp_path / "data"
    with service(data) as (client, ctx):
        eng, op = _login(client, ctx, "engineer"), _login(client, ctx, "operator")
        _register(client, ctx, trained[1], eng)
        results = _inspect(client, op, _defects(synthetic)[:5])
        # a crash: the process dies before the background save; nothing of the index reached the disk
        ctx.search._dirty.clear()
        ctx.search.save = lambda: None
        ctx.search.stop = lambda: None
    assert not any((data / "search").rglob("*.npz"))
    with service(data) as (client, ctx):
        viewer = _login(client, ctx, "viewer")
        hits = client.get(f"/api/v1/inspections/{results[0]['id']}/similar", params={"k": 4}, headers=viewer).json()
        assert sorted(h["inspection"]["id"] for h in hits) == sorted(x["id"] for x in results[1:])
    assert any((data / "search").rglob("*"))  # saved when the service stopped


def test_backfill_gives_old_inspections_vectors(running, synthetic):
    client, ctx, eng, op, viewer = running
    results = _inspect(client, op, _defects(synthetic)[:4])
    with ctx.sessions() as s, s.begin():  # as if stored before search existed
        s.execute(delete(InspectionVectors))
    ctx.search.reconcile(rebuild=True)
    r = client.get(f"/api/v1/inspections/{results[0]['id']}/similar", headers=viewer)
    assert r.status_code == 409 and "backfill" in r.json()["detail"]
    assert client.post("/api/v1/search/backfill", json={}, headers=op).status_code == 403
    job = client.post("/api/v1/search/backfill", json={}, headers=eng)
    assert job.status_code == 202, job.text
    for _ in range(300):
        j = client.get(f"/api/v1/jobs/{job.json()['id']}", headers=eng).json()
        if j["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert j["status"] == "succeeded", j
    assert j["result"] == {"embedded": 4, "skipped": 0} and j["progress"] == 1.0
    hits = client.get(f"/api/v1/inspections/{results[0]['id']}/similar", params={"k": 3}, headers=viewer).json()
    assert sorted(h["inspection"]["id"] for h in hits) == sorted(x["id"] for x in results[1:])


def test_the_qdrant_backend_serves_the_same_api(tmp_path, trained, synthetic):
    pytest.importorskip("qdrant_client", reason="qdrant-client not installed: pip install 'linewatch[search]'")
    from linewatch.search.qdrant_index import QdrantIndex
    from linewatch.services.searching import SearchHub

    def hub(settings, sessions):  # qdrant-client's local mode: the client code paths of a server, in a folder
        return SearchHub(settings, sessions, open_index=lambda dim, name: QdrantIndex(dim, path=tmp_path / "qd" / name))

    with service(tmp_path / "data", hub) as (client, ctx):
        eng, op, viewer = (_login(client, ctx, r) for r in ("engineer", "operator", "viewer"))
        _register(client, ctx, trained[1], eng)
        results = _inspect(client, op, _defects(synthetic)[:5])
        hits = client.get(f"/api/v1/inspections/{results[0]['id']}/similar", params={"k": 4}, headers=viewer).json()
        assert sorted(h["inspection"]["id"] for h in hits) == sorted(x["id"] for x in results[1:])
        client.post(
            f"/api/v1/inspections/{results[1]['id']}/reviews",
            json={"verdict": "anomalous", "defect_type": "spot"},
            headers=op,
        )
        only = client.get(
            f"/api/v1/inspections/{results[0]['id']}/similar", params={"defect_type": "spot"}, headers=viewer
        ).json()
        assert [h["inspection"]["id"] for h in only] == [results[1]["id"]]
        assert client.delete(f"/api/v1/inspections/{results[2]['id']}", headers=eng).status_code == 204
        hits = client.get(f"/api/v1/inspections/{results[0]['id']}/similar", params={"k": 4}, headers=viewer).json()
        assert results[2]["id"] not in [h["inspection"]["id"] for h in hits]
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Inspection)) == 4


def test_search_rebuild_command(tmp_path, trained, synthetic):
    import shutil
    import subprocess
    import sys

    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "linewatch.cli", "search", "rebuild", "--data-dir", str(data), "-q"]
    with service(data) as (client, ctx):
        eng, op = _login(client, ctx, "engineer"), _login(client, ctx, "operator")
        _register(client, ctx, trained[1], eng)
        results = _inspect(client, op, _defects(synthetic)[:5])
        busy = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert busy.returncode == 2 and "in use by another process" in busy.stderr and "Traceback" not in busy.stderr
    shutil.rmtree(data / "search")  # lost, or corrupt: the database has everything
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "indexed 5 inspections" in done.stderr
    with service(data, NoReconcile) as (client, ctx):
        viewer = _login(client, ctx, "viewer")
        hits = client.get(f"/api/v1/inspections/{results[0]['id']}/similar", params={"k": 4}, headers=viewer).json()
        assert sorted(h["inspection"]["id"] for h in hits) == sorted(x["id"] for x in results[1:])


def test_thumbnail_cache_keeps_recent_ones_within_its_size():
    from linewatch.services.thumbnails import Thumbnails

    cache = Thumbnails(max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    assert cache.get("a") == b"12345"  # now the most recent
    cache.put("c", b"123")  # over 10 bytes: the least recent (b) goes
    assert cache.get("b") is None and cache.get("a") == b"12345" and cache.get("c") == b"123"


def test_uploads_stored_by_another_process_count_as_recent(running, synthetic, monkeypatch):
    """A repeat of an image another service process stored (a row this process never wrote) is spotted once the
    per-station cache refreshes."""
    from linewatch.services import searching
    from linewatch.store.tables import Station

    client, ctx, eng, op, viewer = running
    a = sorted((synthetic / "test" / "good").glob("*.png"))[0]
    first = _inspect(client, op, [a])[0]
    with ctx.sessions() as s, s.begin():  # the same image, stored by "another process" at the same station
        st = s.scalar(select(Station).where(Station.name == "cam1"))
        row = s.get(Inspection, first["id"])
        other = Inspection(
            station_id=st.id,
            model_id=row.model_id,
            image_sha256="f" * 64,
            image_phash=row.image_phash,
            image_fingerprint=row.image_fingerprint,
            heatmap_sha256=row.heatmap_sha256,
            width=row.width,
            height=row.height,
            score=0.0,
            normalized_score=0.0,
            verdict="good",
            regions=[],
            latency_ms=0.0,
        )
        s.add(other)
        fingerprint = row.image_fingerprint
    monkeypatch.setattr(searching, "REFRESH_S", 0.0)
    ctx.recent.forget()  # this process knew nothing of it
    # same phash, different bytes: the newest near match is the other process's row or the first; both are repeats
    got = ctx.recent.find(st.id, "e" * 64, row.image_phash, fingerprint, 3600, 16, 500)
    assert got is not None and got[1] == "near"
    assert ctx.recent.find(st.id, "f" * 64, "0" * 16, None, 3600, 16, 500) == (other.id, "exact")


def test_repeats_are_not_listed_as_similar_defects(running, synthetic):
    """A repeated upload is the same part again: search lists its original once, not every copy."""
    client, ctx, eng, op, viewer = running
    paths = _defects(synthetic)[:4]
    results = _inspect(client, op, paths)
    again = _inspect(client, op, [paths[1]])[0]
    assert again["duplicate_of"] == results[1]["id"]

    def similar(iid: int) -> list[int]:
        hits = client.get(f"/api/v1/inspections/{iid}/similar", params={"k": 10}, headers=viewer).json()
        return [h["inspection"]["id"] for h in hits]

    assert again["id"] not in similar(results[0]["id"])
    assert similar(again["id"])[0] == results[1]["id"]  # the repeat's own search finds its original first
    # the original deleted: the repeat stands for it
    assert client.delete(f"/api/v1/inspections/{results[1]['id']}", headers=eng).status_code == 204
    assert again["id"] in similar(results[0]["id"])


def test_other_parts_of_one_product_are_not_repeats_but_copies_are(running, part_shot):
    """Two photos of the same product a perceptual hash cannot tell apart are two parts; the same photo
    re-encoded or cropped by two pixels is a repeat of the first upload."""
    client, ctx, eng, op, viewer = running

    def send(img: Image.Image, fmt: str, **kw) -> dict:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        files = [("files", (f"part.{fmt.lower()}", buf.getvalue(), f"image/{fmt.lower()}"))]
        r = client.post("/api/v1/stations/cam1/inspect", files=files, headers=op)
        assert r.status_code == 200, r.text
        return r.json()[0]

    one, two = part_shot(4), part_shot(14)
    first, second = send(one, "PNG"), send(two, "PNG")
    assert first["duplicate_of"] is None and second["duplicate_of"] is None
    for copy in (send(one, "JPEG", quality=90), send(one.crop((2, 0, one.width, one.height - 2)), "PNG")):
        assert copy["duplicate_of"] == first["id"] and copy["duplicate_kind"] == "near"
    stats = client.get("/api/v1/stats", params={"station": "cam1"}, headers=viewer).json()
    assert stats["parts"] == 2 and stats["duplicates"] == 2


def _copies_at(ctx, template_id: int, times: list, verdicts: list[str]) -> None:
    """Rows like inspection ``template_id`` stored at the given times (a line that ran then)."""
    with ctx.sessions() as s, s.begin():
        t = s.get(Inspection, template_id)
        for i, (at, verdict) in enumerate(zip(times, verdicts, strict=True)):
            s.add(
                Inspection(
                    station_id=t.station_id,
                    model_id=t.model_id,
                    image_sha256=f"{i:064x}",
                    image_phash=t.image_phash,
                    heatmap_sha256=t.heatmap_sha256,
                    width=t.width,
                    height=t.height,
                    score=t.score,
                    normalized_score=t.normalized_score,
                    verdict=verdict,
                    regions=[],
                    latency_ms=1.0,
                    created_at=at,
                )
            )


def test_throughput_is_parts_over_the_time_the_line_covered(running, synthetic):
    """50 parts in the last 20 s of a 5-minute period is 2.5 parts/s, not 50 / 300; once the line ran before the
    period, the whole period counts."""
    import datetime as dt

    client, ctx, eng, op, viewer = running
    now = dt.datetime.now(dt.UTC)
    first = _inspect(client, op, sorted((synthetic / "test" / "good").glob("*.png"))[:1])[0]
    _copies_at(ctx, first["id"], [now - dt.timedelta(seconds=20 - 0.4 * i) for i in range(49)], ["anomalous"] * 49)
    period = {"station": "cam1", "since": (now - dt.timedelta(seconds=300)).isoformat()}
    got = client.get("/api/v1/stats", params=period, headers=viewer).json()
    assert got["parts"] == 50 and got["anomalous"] == 49 + (first["verdict"] == "anomalous")
    assert 20 <= got["covered_s"] < 30  # from the first part to now, however long this test took
    assert got["throughput_per_s"] == pytest.approx(50 / got["covered_s"], rel=1e-3) and got["throughput_per_s"] > 1.6
    _copies_at(ctx, first["id"], [now - dt.timedelta(seconds=400)], ["good"])  # the line ran before the period
    got = client.get("/api/v1/stats", params=period, headers=viewer).json()
    assert got["parts"] == 50 and 300 <= got["covered_s"] < 310
    assert got["throughput_per_s"] == pytest.approx(50 / got["covered_s"], rel=1e-3)
    empty = client.get("/api/v1/stats", params={"station": "cam1", "until": "2001-01-01T00:00:00Z"}, headers=viewer)
    assert empty.json()["throughput_per_s"] is None and empty.json()["covered_s"] is None


def test_a_review_is_kept_with_its_reviewer_and_shown_as_the_verdict_that_counts(running, synthetic):
    client, ctx, eng, op, viewer = running
    part = _inspect(client, op, sorted((synthetic / "test" / "good").glob("*.png"))[:1])[0]
    assert part["reviewed"] is False and part["review_verdict"] is None
    overturn = "good" if part["verdict"] == "anomalous" else "anomalous"
    body = {
        "verdict": overturn,
        "defect_type": "scratch" if overturn == "anomalous" else None,
        "note": "seen at 3 o'clock",
    }
    r = client.post(f"/api/v1/inspections/{part['id']}/reviews", json=body, headers=op)
    assert r.status_code == 201 and r.json()["reviewer"] == "operator-user"
    client.post(f"/api/v1/inspections/{part['id']}/reviews", json={**body, "note": "confirmed"}, headers=eng)
    history = client.get(f"/api/v1/inspections/{part['id']}/reviews", headers=viewer).json()
    assert [(x["reviewer"], x["verdict"], x["note"]) for x in history] == [
        ("operator-user", overturn, "seen at 3 o'clock"),
        ("engineer-user", overturn, "confirmed"),
    ]
    got = client.get(f"/api/v1/inspections/{part['id']}", headers=viewer).json()
    assert got["review_verdict"] == overturn and got["verdict"] == part["verdict"]  # the model's stays as it was
    listed = client.get("/api/v1/inspections", params={"station": "cam1"}, headers=viewer).json()["items"]
    [item] = [x for x in listed if x["id"] == part["id"]]
    assert item["review_verdict"] == overturn
    assert (item["review"]["reviewer"], item["review"]["note"]) == ("engineer-user", "confirmed")
    assert got["review"]["reviewer"] == "engineer-user"


def test_suggestions_only_for_defective_parts_and_never_certain_from_one_look_alike(running, synthetic):
    client, ctx, eng, op, viewer = running
    defect = _defects(synthetic)[0]
    goods = sorted((synthetic / "test" / "good").glob("*.png"))
    results = _inspect(client, op, [defect, *goods])
    labelled, good = results[0], next(x for x in results[1:] if x["verdict"] == "good")
    r = client.post(
        f"/api/v1/inspections/{labelled['id']}/reviews",
        json={"verdict": "anomalous", "defect_type": "spot"},
        headers=op,
    )
    assert r.status_code == 201

    def suggestion(iid: int) -> dict:
        return client.get(f"/api/v1/inspections/{iid}/suggestion", headers=viewer).json()

    assert suggestion(good["id"])["defect_type"] is None  # a passing part: no defect type to accept
    r = client.post(f"/api/v1/inspections/{good['id']}/reviews", json={"verdict": "anomalous"}, headers=op)
    assert r.status_code == 201
    sug = suggestion(good["id"])  # reviewed defective: now a suggestion, from its one labelled look-alike
    assert sug["defect_type"] == "spot" and sug["neighbours"] == 1
    # one vote of weight ≤ 1 (its similarity) and two pseudo-votes at least: under 2/3, never "100 %"
    assert 0.5 <= sug["confidence"] < 2 / 3


def test_similar_defects_follow_the_reviewed_verdict(running, synthetic):
    """Asking for defects (verdict=anomalous) leaves out a part a reviewer found good, and takes in a part the model
    passed that a reviewer found defective."""
    client, ctx, eng, op, viewer = running
    results = _inspect(client, op, _defects(synthetic)[:4] + sorted((synthetic / "test" / "good").glob("*.png"))[:2])
    bad = [x for x in results if x["verdict"] == "anomalous"]
    good = [x for x in results if x["verdict"] == "good"]
    assert len(bad) >= 2 and good
    query, cleared, missed = bad[0], bad[1], good[0]
    for part, verdict in ((cleared, "good"), (missed, "anomalous")):
        r = client.post(f"/api/v1/inspections/{part['id']}/reviews", json={"verdict": verdict}, headers=op)
        assert r.status_code == 201
    hits = client.get(
        f"/api/v1/inspections/{query['id']}/similar", params={"k": 50, "verdict": "anomalous"}, headers=viewer
    ).json()
    ids = {h["inspection"]["id"] for h in hits}
    assert cleared["id"] not in ids and missed["id"] in ids
    assert all((h["inspection"]["review_verdict"] or h["inspection"]["verdict"]) == "anomalous" for h in hits)


def test_station_list_says_what_a_rollback_would_bring_back(running, trained):
    client, ctx, eng, op, viewer = running

    def cam1() -> dict:
        return next(s for s in client.get("/api/v1/stations", headers=viewer).json() if s["name"] == "cam1")

    first = cam1()["active_model_id"]
    assert cam1()["previous_model_id"] is None  # one model ever: nothing to roll back to
    with ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m2", method="patchcore", backbone="efficientnet_lite0", image_size=128, status="ready")
        mv.path = str(trained[1].resolve())
        s.add(mv)
    assert client.post(f"/api/v1/models/{mv.id}/activate", json={"station": "cam1"}, headers=eng).status_code == 200
    assert (cam1()["active_model_id"], cam1()["previous_model_id"]) == (mv.id, first)
    assert client.post("/api/v1/stations/cam1/rollback", headers=eng).status_code == 200
    assert (cam1()["active_model_id"], cam1()["previous_model_id"]) == (first, mv.id)
