"""GET /stations/{name}/drift: a station's recent scores against the held-out good scores its model keeps."""

import datetime as dt
import json

import numpy as np
import pytest


@pytest.fixture
def manifest(trained) -> dict:
    """A real model's manifest, whose thresholds and kept scores each test sets."""
    return json.loads((trained[1] / "manifest.json").read_text())


def _model(
    api, tmp_path, base: dict, name: str, kept, threshold: float = 2.3, rate: float = 0.01, looks: dict | None = None
) -> int:
    """A ready model version whose manifest keeps ``kept`` held-out good scores (None: a model trained before they
    were kept) and ``looks`` (``appearance.kept_looks``) of those images."""
    from linewatch.store.tables import ModelVersion

    folder = tmp_path / name
    folder.mkdir()
    manifest = {**base, "calibration": {**base["calibration"], "image_threshold": threshold, "false_alarm_rate": rate}}
    manifest.pop("calibration_scores", None)
    if kept is not None:
        manifest["calibration_scores"] = {
            "image": kept,
            "peak": kept,
            "floor": 0.0,
            "source": "training",
            "images": len(kept),
            "at": "2026-12-06T08:00:00+00:00",
            **(looks or {}),
        }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with api.ctx.sessions() as s, s.begin():
        mv = ModelVersion(
            name=name,
            method="patchcore",
            backbone="x",
            image_size=64,
            status="ready",
            threshold=threshold,
            path=str(folder),
        )
        s.add(mv)
        s.flush()
        return mv.id


def _station(api, name: str, model_id: int | None) -> int:
    from linewatch.store.tables import Station

    with api.ctx.sessions() as s, s.begin():
        st = Station(name=name, active_model_id=model_id)
        s.add(st)
        s.flush()
        return st.id


def _parts(api, station_id: int, model_id: int, scores, threshold: float = 2.3, **extra) -> list[int]:
    from linewatch.store.tables import Inspection

    ids = []
    with api.ctx.sessions() as s, s.begin():
        for score in scores:
            row = Inspection(
                station_id=station_id,
                model_id=model_id,
                image_sha256=f"{len(ids):064d}",
                image_phash="0" * 16,
                heatmap_sha256="0" * 64,
                width=64,
                height=64,
                score=float(score),
                normalized_score=0.5,
                verdict="anomalous" if score >= threshold else "good",
                latency_ms=1.0,
                **extra,
            )
            s.add(row)
            s.flush()
            ids.append(row.id)
    return ids


def test_a_station_whose_scores_rose_is_told_to_set_its_thresholds_again(api, tmp_path, manifest):
    c = api.client
    viewer = api.user("viewer")
    rng = np.random.default_rng(0)
    model_id = _model(api, tmp_path, manifest, "m", rng.normal(0, 1, 60).tolist())
    cam = _station(api, "cam1", model_id)
    _parts(api, cam, model_id, rng.normal(0, 1, 80))
    r = c.get("/api/v1/stations/cam1/drift", headers=viewer)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["level"] == "ok" and d["recent"] == 80 and d["reference"] == 60 and d["model_id"] == model_id
    assert 0.35 < d["shift_auroc"] < 0.65 and d["reference_source"] == "training" and d["since"] <= d["until"]
    assert "look as when the thresholds were set" in d["reason"] and d["false_alarms"] is None

    # the light changed: the newest 80 parts score higher; the window is the newest `last` parts
    brighter = rng.normal(1.5, 1, 80)
    _parts(api, cam, model_id, brighter)
    d = c.get("/api/v1/stations/cam1/drift", params={"last": 80}, headers=viewer).json()
    assert d["level"] == "drift" == d["scores_level"] and d["shift_auroc"] > 0.8 and d["recent"] == 80
    assert d["flags"] == int(np.sum(brighter >= 2.3)) > 0 and d["flagged_share"] == pytest.approx(d["flags"] / 80)
    assert "set the thresholds again" in d["reason"]
    assert c.get("/api/v1/stations/cam1/drift", params={"last": 160}, headers=viewer).json()["recent"] == 160


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_a_dimmer_lamp_and_a_moved_camera_are_seen_in_the_photos_when_the_scores_miss_them(api, tmp_path, manifest):
    """The looks the model keeps of its good images against the recent photos' whole-image search vectors and
    brightness (stored with each inspection); parts stored without them are left out of that comparison alone."""
    from linewatch.store.tables import InspectionVectors
    from linewatch.vision.appearance import kept_looks

    c = api.client
    viewer = api.user("viewer")
    rng = np.random.default_rng(5)
    centre = _unit(rng.normal(size=16))

    def looks_around(n, spread=0.3, at=centre):
        return _unit(at + spread * rng.normal(size=(n, 16)))

    kept = kept_looks(looks_around(60), rng.normal(0.5, 0.05, 60))
    model_id = _model(api, tmp_path, manifest, "m", rng.normal(0, 1, 60).tolist(), looks=kept)
    cam = _station(api, "cam1", model_id)

    def parts(n, light, vectors):
        ids = _parts(api, cam, model_id, rng.normal(0, 1, n))
        with api.ctx.sessions() as s, s.begin():
            for i, v, b in zip(ids, vectors, rng.normal(light, 0.05, n), strict=True):
                s.get(Inspection, i).brightness = float(b)
                s.add(
                    InspectionVectors(
                        inspection_id=i,
                        space="x",
                        image=v.tobytes(),
                        defects=v.tobytes(),
                        defect_dim=16,
                        from_regions=False,
                    )
                )

    from linewatch.store.tables import Inspection

    _parts(api, cam, model_id, rng.normal(0, 1, 40))  # stored before brightness and vectors were kept
    d = c.get("/api/v1/stations/cam1/drift", headers=viewer).json()
    assert d["level"] == "ok" and d["look_level"] == d["brightness_level"] == "unknown" and d["look_auroc"] is None
    parts(80, 0.5, looks_around(80))
    d = c.get("/api/v1/stations/cam1/drift", headers=viewer).json()
    assert d["recent"] == 120 and d["level"] == "ok" == d["look_level"] == d["brightness_level"], d
    assert abs(d["brightness_change"]) < 0.05 and 0.3 < d["look_auroc"] < 0.7
    parts(80, 0.4, looks_around(80))  # the lamp dimmed a fifth: the scores as before
    trend = c.get("/api/v1/stations/cam1/drift", params={"last": 200}, headers=viewer).json()["trend"]
    # the chart of when it moved: 200 parts oldest first in 24 groups, the dimmer ones last, none before 0014 kept
    assert len(trend) == 24 and sum(w["parts"] for w in trend) == 200
    assert [w["until"] for w in trend] == sorted(w["until"] for w in trend)
    assert trend[-1]["brightness"] < 0.45 < trend[10]["brightness"] and trend[0]["brightness"] is None
    assert trend[0]["look"] is None and 0 < trend[-1]["look"] < 1
    d = c.get("/api/v1/stations/cam1/drift", params={"last": 80}, headers=viewer).json()
    assert d["reference_band"]["brightness"][0] < 0.5 < d["reference_band"]["brightness"][2]
    assert d["scores_level"] == "ok" and d["brightness_level"] == "drift" == d["level"], d
    assert (
        d["brightness_change"] < -0.15 and "darker" in d["reason"] and "check the light and the camera" in d["reason"]
    )
    # the service's watch sets the gauges a plant's monitoring alerts on (its window: the last 500 parts)
    assert api.ctx.drift.run_once() == 1
    metrics = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in c.get("/metrics").text.splitlines()
        if line.startswith("linewatch_station_drift_") and 'station="cam1"' in line
    }
    found = c.get("/api/v1/stations/cam1/drift", headers=viewer).json()
    assert metrics["linewatch_station_drift_brightness_change"] == pytest.approx(found["brightness_change"])
    assert metrics["linewatch_station_drift_look_auroc"] == pytest.approx(found["look_auroc"])
    assert metrics["linewatch_station_drift_level"] == {"watch": 1, "drift": 2}[found["level"]]
    parts(80, 0.5, looks_around(80, at=_unit(centre + 1.5 * _unit(rng.normal(size=16)))))  # the camera moved
    d = c.get("/api/v1/stations/cam1/drift", params={"last": 80}, headers=viewer).json()
    # the photos least like the good ones, farthest first: parts of the moved camera (the newest 80)
    newest = c.get("/api/v1/stations/cam1/drift", params={"last": 300}, headers=viewer).json()["farthest"]
    with api.ctx.sessions() as s:
        from sqlalchemy import func, select

        top = s.scalar(select(func.max(Inspection.id)))
    assert len(newest) == 5 and all(top - 80 < f["inspection_id"] <= top for f in newest), newest
    assert [f["distance"] for f in newest] == sorted((f["distance"] for f in newest), reverse=True)
    assert d["look_level"] == "drift" == d["level"] and d["look_auroc"] > 0.8 and d["brightness_level"] == "ok", d
    assert "photos look unlike" in d["reason"]


def test_flags_reviewers_overturned_are_false_alarms_counted_against_the_promised_rate(api, tmp_path, manifest):
    c = api.client
    viewer = api.user("viewer")
    rng = np.random.default_rng(1)
    model_id = _model(api, tmp_path, manifest, "m", rng.normal(0, 1, 60).tolist(), threshold=2.3, rate=0.01)
    other = _model(api, tmp_path, manifest, "other", rng.normal(0, 1, 60).tolist())
    cam = _station(api, "cam1", model_id)
    _parts(api, cam, model_id, rng.normal(0, 1, 70).clip(-3, 2.2))  # no flag among them
    # 20 flags a reviewer overturned: 20 false alarms in 90 parts, at a promised 1 %
    _parts(api, cam, model_id, [2.31] * 20, reviewed=True, review_verdict="good")
    # left out: a part reviewed as defective, a repeated photo, a part scored by another model
    defect = _parts(api, cam, model_id, [9.0], reviewed=True, review_verdict="anomalous")
    _parts(api, cam, model_id, [9.0], duplicate_of=defect[0], duplicate_kind="exact")
    _parts(api, cam, other, [9.0])
    d = c.get("/api/v1/stations/cam1/drift", headers=viewer).json()
    assert d["recent"] == 90 and d["flags"] == 20 and d["reviewed_flags"] == 20
    assert d["false_alarms"] == 20 and d["false_alarm_share"] == pytest.approx(20 / 90)
    assert d["false_alarms_level"] == "drift" == d["level"] and d["false_alarm_p"] < 1e-4
    assert "reviewers overturned 20 flags among 90 parts" in d["reason"]


def test_what_the_watch_cannot_tell_and_refuses(api, tmp_path, manifest):
    c = api.client
    viewer = api.user("viewer")
    assert c.get("/api/v1/stations/cam9/drift", headers=viewer).status_code == 404
    _station(api, "idle", None)
    r = c.get("/api/v1/stations/idle/drift", headers=viewer)
    assert r.status_code == 409 and "runs no model" in r.json()["detail"]
    old = _model(api, tmp_path, manifest, "old", None)  # trained before held-out scores were kept
    cam = _station(api, "cam1", old)
    _parts(api, cam, old, np.linspace(0, 1, 40))
    d = c.get("/api/v1/stations/cam1/drift", headers=viewer).json()
    assert d["level"] == "unknown" and "calibrate" in d["reason"] and d["reference"] == 0
    fresh = _model(api, tmp_path, manifest, "fresh", np.linspace(0, 1, 50).tolist())
    cam2 = _station(api, "cam2", fresh)
    _parts(api, cam2, fresh, np.linspace(0, 1, 12))
    d = c.get("/api/v1/stations/cam2/drift", headers=viewer).json()
    assert d["level"] == "unknown" and "too few" in d["reason"] and d["recent"] == 12
    for bad in (0, 5001, "x"):
        assert c.get("/api/v1/stations/cam2/drift", params={"last": bad}, headers=viewer).status_code == 422
    assert c.get("/api/v1/stations/cam2/drift").status_code == 401


def test_the_watcher_stores_each_change_of_level_then_publishes_it(api, tmp_path, manifest):
    from linewatch.core.events import StationDrift

    c = api.client
    viewer = api.user("viewer")
    heard = []
    api.ctx.bus.subscribe(heard.append, StationDrift)
    rng = np.random.default_rng(4)
    model_id = _model(api, tmp_path, manifest, "m", rng.normal(0, 1, 60).tolist())
    cam = _station(api, "cam1", model_id)
    watcher = api.ctx.drift
    assert watcher.run_once() == 0  # no part yet
    _parts(api, cam, model_id, rng.normal(0, 1, 20))
    assert watcher.run_once() == 0  # too few to tell: nothing stored
    _parts(api, cam, model_id, rng.normal(0, 1, 60))
    assert watcher.run_once() == 1 and [e.level for e in heard] == ["ok"] and heard[0].previous_level == "unknown"
    assert watcher.run_once() == 0  # no new part, no check
    _parts(api, cam, model_id, rng.normal(0, 1, 10))
    assert watcher.run_once() == 0  # checked, the same level: nothing stored
    _parts(api, cam, model_id, rng.normal(2, 1, 400))  # the light changed
    assert watcher.run_once() == 1
    assert [(e.level, e.previous_level) for e in heard] == [("ok", "unknown"), ("drift", "ok")]
    assert heard[1].station == "cam1" and heard[1].model_id == model_id and heard[1].shift_auroc > 0.8
    r = c.get("/api/v1/stations/cam1/drift/history", headers=viewer)
    assert r.status_code == 200, r.text
    changes = r.json()
    assert [(x["level"], x["previous_level"]) for x in changes] == [("drift", "ok"), ("ok", "unknown")]
    assert changes[0]["recent"] == 490 and "set the thresholds again" in changes[0]["reason"]  # every part so far
    at = [dt.datetime.fromisoformat(x.replace("Z", "+00:00")) for x in (changes[0]["at"], heard[1].at)]
    assert abs(at[0] - at[1]) < dt.timedelta(milliseconds=1)
    assert len(c.get("/api/v1/stations/cam1/drift/history", params={"limit": 1}, headers=viewer).json()) == 1
    assert c.get("/api/v1/stations/cam9/drift/history", headers=viewer).status_code == 404
    metrics = c.get("/metrics").text
    assert 'linewatch_station_drift_level{station="cam1"} 2.0' in metrics
    assert 'linewatch_station_drift_shift_auroc{station="cam1"}' in metrics
    # the station list says each station's level as stored last, for a glance over all of them
    listed = {x["name"]: x for x in c.get("/api/v1/stations", headers=viewer).json()}
    assert listed["cam1"]["drift_level"] == "drift" and listed["cam1"]["drift_since"] == changes[0]["at"]
    # another model on the station: its first level is a change too, even when it is the same level
    other = _model(api, tmp_path, manifest, "other", rng.normal(2, 1, 60).tolist())
    with api.ctx.sessions() as s, s.begin():
        from linewatch.store.tables import Station

        s.get(Station, cam).active_model_id = other
    listed = {x["name"]: x for x in c.get("/api/v1/stations", headers=viewer).json()}
    assert listed["cam1"]["drift_level"] is None is listed["cam1"]["drift_since"]  # not checked on this model yet
    _parts(api, cam, other, rng.normal(2, 1, 60))
    assert watcher.run_once() == 1 and heard[-1].level == "ok" and heard[-1].model_id == other
    assert c.get("/api/v1/stations", headers=viewer).json()[0]["drift_level"] == "ok"


def test_two_service_processes_store_a_change_once(api, tmp_path, manifest, race):
    """Two processes' watchers that saw the same change at once: one stores and publishes it, the other neither."""
    from linewatch.core.events import StationDrift
    from linewatch.services import drift
    from linewatch.store.tables import StationDriftChange

    heard = []
    api.ctx.bus.subscribe(heard.append, StationDrift)
    rng = np.random.default_rng(5)
    model_id = _model(api, tmp_path, manifest, "m", rng.normal(0, 1, 60).tolist())
    cam = _station(api, "cam1", model_id)
    _parts(api, cam, model_id, rng.normal(0, 1, 60))
    one, two = drift.DriftWatcher(api.ctx), drift.DriftWatcher(api.ctx)
    assert sorted(race([one.run_once, two.run_once], at=[(drift, "last_change")])) == [0, 1]
    _parts(api, cam, model_id, rng.normal(2, 1, 400))  # the light changed: both see it again
    assert sorted(race([one.run_once, two.run_once], at=[(drift, "last_change")])) == [0, 1]
    with api.ctx.sessions() as s:
        rows = s.query(StationDriftChange).order_by(StationDriftChange.id).all()
        assert [(r.level, r.previous_level) for r in rows] == [("ok", "unknown"), ("drift", "ok")]
        assert [r.follows_id for r in rows] == [0, rows[0].id]
    assert [(e.level, e.previous_level) for e in heard] == [("ok", "unknown"), ("drift", "ok")]


def test_a_periodic_part_works_on_its_own_and_outlives_a_failed_round():
    import time

    from linewatch.services.periodic import Periodic

    calls = []

    class Every(Periodic):
        every_s = 0.01

        def run_once(self):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("the database is away")
            return 0

    p = Every()
    p.start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.stop()
    assert len(calls) >= 3 and not p._thread.is_alive()
