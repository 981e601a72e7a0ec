"""Regressions for bad input found by fuzzing (test_schema_fuzz.py) and by hand: each gets a clear 4xx with a
JSON ``detail``, never a 5xx, on SQLite and on PostgreSQL (which refuses NUL in text, checks varchar lengths
and integer ranges where SQLite does not)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image

BIG_IDS = [0, -1, 2**31, 2**63, 10**30]


def _png(size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header says width x height (a decompression bomb as far as the header goes)."""
    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts after signature, length and type
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    return body["detail"]


def _ready_station(api, tmp_path, name="cam") -> None:
    """A station whose active model is marked ready: enough to reach image decoding (which fails first)."""
    from linewatch.store.tables import ModelVersion, Station

    with api.ctx.sessions() as s, s.begin():
        mv = ModelVersion(
            name="m", method="patchcore", backbone="efficientnet_lite0", image_size=64, status="ready",
            path=str(tmp_path),
        )  # fmt: skip
        s.add(mv)
        s.flush()
        s.add(Station(name=name, active_model_id=mv.id))


def _inspection(api) -> int:
    from linewatch.store.tables import Inspection, ModelVersion, Station

    key = api.ctx.blobs.put(_png())
    with api.ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m", method="patchcore", backbone="b", image_size=64, status="failed")
        st = Station(name="insp")
        s.add_all([mv, st])
        s.flush()
        row = Inspection(
            station_id=st.id, model_id=mv.id, image_sha256=key, image_phash="0" * 16, heatmap_sha256=key,
            width=16, height=16, score=1.0, normalized_score=0.1, verdict="good", regions=[], latency_ms=1.0,
        )  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def test_nul_and_control_characters_are_refused(api):
    c, eng, adm = api.client, api.user("engineer"), api.user("admin")
    r = c.post("/api/v1/stations", json={"name": "cam\x001"}, headers=eng)
    _error(r, 422)
    assert r.json()["errors"][0]["loc"] == ["body", "name"]
    _error(c.post("/api/v1/datasets", json={"name": "parts\x00"}, headers=eng), 422)
    _error(c.post("/api/v1/api-keys", json={"name": "k\x00", "role": "viewer"}, headers=adm), 422)
    _error(c.post("/api/v1/auth/login", json={"username": "a\x00", "password": "whatever"}), 422)
    _error(c.post("/api/v1/models/1/activate", json={"station": "c\x00"}, headers=eng), 422)
    _error(c.post("/api/v1/stations/cam%00/rollback", headers=eng), 422)
    _error(c.get("/api/v1/inspections", params={"station": "cam\x00"}, headers=eng), 422)
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
    _error(c.post("/api/v1/jobs/train", json={"dataset_id": ds["id"], "name": "x\x00"}, headers=eng), 422)
    _error(c.post("/api/v1/jobs/train", json={"dataset_id": ds["id"], "backbone": "../x"}, headers=eng), 422)


def test_review_note_allows_line_breaks_but_not_nul(api):
    c, op = api.client, api.user("operator")
    inspection_id = _inspection(api)
    url = f"/api/v1/inspections/{inspection_id}/reviews"
    _error(c.post(url, json={"verdict": "good", "note": "a\x00b"}, headers=op), 422)
    _error(c.post(url, json={"verdict": "good", "defect_type": "scratch\n"}, headers=op), 422)
    r = c.post(url, json={"verdict": "anomalous", "defect_type": "scratch", "note": "line 1\n\tline 2"}, headers=op)
    assert r.status_code == 201, r.text
    assert r.json()["note"] == "line 1\n\tline 2"


def test_ids_out_of_range_are_422_not_a_database_error(api):
    c, adm = api.client, api.user("admin")
    for value in BIG_IDS:
        _check_ids(c, adm, value)
    assert c.get("/api/v1/datasets/2147483647", headers=adm).status_code == 404  # the largest id: just not there


def _check_ids(c, adm, value: int) -> None:
    for method, url in [
        ("GET", f"/api/v1/datasets/{value}"),
        ("DELETE", f"/api/v1/datasets/{value}"),
        ("GET", f"/api/v1/models/{value}"),
        ("GET", f"/api/v1/models/{value}/export"),
        ("GET", f"/api/v1/models/{value}/bundle"),
        ("GET", f"/api/v1/inspections/{value}"),
        ("GET", f"/api/v1/inspections/{value}/image"),
        ("GET", f"/api/v1/inspections/{value}/reviews"),
        ("DELETE", f"/api/v1/api-keys/{value}"),
    ]:
        _error(c.request(method, url, headers=adm), 422)
    # Job ids are digits only in the route, so a negative one matches no route at all.
    _error(c.get(f"/api/v1/jobs/{value}", headers=adm), 422 if value >= 0 else 404)
    _error(c.post("/api/v1/jobs/train", json={"dataset_id": value}, headers=adm), 422)
    r = c.get("/api/v1/inspections", params={"cursor": value}, headers=adm)
    assert r.status_code == (200 if value == 0 else 422), r.text


def test_score_filters_refuse_nan_and_inf(api):
    c, v = api.client, api.user("viewer")
    for score in ("nan", "inf", "-inf", "NaN", "Infinity", "1e400"):
        _error(c.get("/api/v1/inspections", params={"min_score": score}, headers=v), 422)
        _error(c.get("/api/v1/inspections", params={"max_score": score}, headers=v), 422)
    assert c.get("/api/v1/inspections", params={"min_score": -5, "max_score": 1e300}, headers=v).status_code == 200


TIMES = [
    ("2025-01-31T08:00:00Z", 200),
    ("2025-01-31T08:00:00+14:00", 200),
    ("2025-01-31T08:00:00-12:00", 200),
    ("2025-01-31t08:00:00z", 200),
    ("2025-01-31T08:00:00", 200),  # no offset: UTC
    ("2025-01-31 08:00:00+05:30", 200),
    ("0001-01-01T00:00:00+01:00", 422),  # before year 1 in UTC
    ("9999-12-31T23:59:59-01:00", 422),  # after year 9999 in UTC
    ("2025-02-30T00:00:00Z", 422),
    ("2025-01-31T08:00:00+25:00", 422),
    ("0.5", 422),  # not a Unix time
    ("2025-01-31", 422),
    ("yesterday", 422),
]


def test_time_filters(api):
    c, v = api.client, api.user("viewer")
    for value, status in TIMES:
        r = c.get("/api/v1/inspections", params={"since": value}, headers=v)
        if status == 200:
            assert r.status_code == 200, (value, r.text)
        else:
            _error(r, status)


def test_time_filter_with_an_offset_compares_in_utc(api):
    c, v = api.client, api.user("viewer")
    inspection_id = _inspection(api)
    created = c.get(f"/api/v1/inspections/{inspection_id}", headers=v).json()["created_at"]
    assert created.endswith(("+00:00", "Z")), created  # stored times say they are UTC, on SQLite too
    import datetime as dt

    t = dt.datetime.fromisoformat(created)
    # The same instant written in another zone: an hour before includes the row, an hour after does not.
    before = (t - dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=9))).isoformat()
    after = (t + dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=-7))).isoformat()
    ids = lambda params: [x["id"] for x in c.get("/api/v1/inspections", params=params, headers=v).json()["items"]]  # noqa: E731
    assert ids({"since": before}) == [inspection_id]
    assert ids({"since": after}) == []
    assert ids({"until": after}) == [inspection_id]


def test_limits_are_checked(api):
    c, v = api.client, api.user("viewer")
    for limit in (0, -1, 501, 2**64):
        _error(c.get("/api/v1/inspections", params={"limit": limit}, headers=v), 422)
        _error(c.get("/api/v1/jobs", params={"limit": limit}, headers=v), 422)
    assert c.get("/api/v1/jobs", params={"limit": 500}, headers=v).status_code == 200


def test_timestamps_carry_an_offset(api):
    c, adm = api.client, api.user("admin")
    key = c.post("/api/v1/api-keys", json={"name": "k", "role": "viewer"}, headers=adm).json()
    assert key["created_at"].endswith(("+00:00", "Z")), key
    for url in ("/api/v1/users", "/api/v1/api-keys"):
        for item in c.get(url, headers=adm).json():
            assert item["created_at"].endswith(("+00:00", "Z")), item


def test_malformed_bodies(api):
    c, eng = api.client, api.user("engineer")
    json_type = {**eng, "content-type": "application/json"}
    detail = _error(c.post("/api/v1/stations", content=b"{not json", headers=json_type), 422)
    assert detail == "invalid request"
    _error(c.post("/api/v1/stations", content=b"\xff\xfe{", headers=json_type), 400)  # not UTF-8
    _error(c.post("/api/v1/stations", content=b"[]", headers=json_type), 422)
    _error(c.post("/api/v1/stations", content=b'{"name": "\\ud800"}', headers=json_type), 422)  # lone surrogate
    r = c.post("/api/v1/stations", json={"name": "x", "extra": 1, "nested": {"a": [1] * 100}}, headers=eng)
    assert r.status_code == 201, r.text  # unknown fields are ignored


def test_bad_multipart(api):
    c, eng = api.client, api.user("engineer")
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
    url = f"/api/v1/datasets/{ds['id']}/images"
    r = c.post(url, content=b"\xff\x00garbage", headers={**eng, "content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code in (400, 422), r.text
    _error(r, r.status_code)
    _error(c.post(url, headers=eng), 422)  # no files at all
    _error(c.post(url, data={"files": "just text"}, headers=eng), 422)
    _error(c.post(url, files=[("other", ("a.png", _png(), "image/png"))], headers=eng), 422)


def test_dataset_upload_skips_bombs_and_corrupt_images(api):
    c, eng = api.client, api.user("engineer")
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
    files = [
        ("files", ("bomb.png", _png_claiming(20000, 20000), "image/png")),
        ("files", ("big.png", _png_claiming(7000, 7000), "image/png")),
        ("files", ("truncated.png", _png()[:60], "image/png")),
        ("files", ("text.png", b"hello, not an image", "image/png")),
        ("files", ("x" * 400 + ".png", _png(), "image/png")),  # longer than the filename column
        ("files", ("good.png", _png(), "image/png")),
    ]
    r = c.post(f"/api/v1/datasets/{ds['id']}/images", files=files, headers=eng)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == 2 and body["images"] == 2
    skipped = body["skipped"]
    assert len(skipped) == 4
    assert skipped[0].startswith("bomb.png:") and "too large" in skipped[0]
    assert skipped[1].startswith("big.png:") and "over the limit" in skipped[1]
    assert all("not a readable image" in s for s in skipped[2:])


def test_zip_uploads(api, monkeypatch):
    from linewatch.services import datasets

    c, eng = api.client, api.user("engineer")
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
    url = f"/api/v1/datasets/{ds['id']}/images"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(3):
            z.writestr(f"good/{i}.png", _png())
    good = buf.getvalue()
    r = c.post(url, files=[("files", ("g.zip", good, "application/zip"))], headers=eng)
    assert r.status_code == 200 and r.json()["added"] == 3, r.text
    # what a Mac or a NAS adds to a zip (resource forks, thumbnails) is not a part's photo
    with zipfile.ZipFile(buf := io.BytesIO(), "w") as z:
        z.writestr("good/3.png", _png())
        z.writestr("__MACOSX/good/._3.png", b"\x00\x05\x16\x07 resource fork")
        z.writestr("good/@eaDir/3.png/SYNOFILE_THUMB_M.png", _png())
        z.writestr("good/.thumbnails/3.png", _png())
    r = c.post(url, files=[("files", ("mac.zip", buf.getvalue(), "application/zip"))], headers=eng)
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    # What the members unpack to is checked before any is read (zip bombs).
    monkeypatch.setattr(datasets, "MAX_UNZIPPED_BYTES", 100)
    assert "unpack" in _error(c.post(url, files=[("files", ("g.zip", good, "application/zip"))], headers=eng), 413)
    monkeypatch.undo()
    # A member whose compressed data is damaged.
    broken = bytearray(good)
    start = broken.index(b"good/0.png") + len("good/0.png")
    broken[start : start + 40] = b"\x00" * 40
    detail = _error(c.post(url, files=[("files", ("b.zip", bytes(broken), "application/zip"))], headers=eng), 400)
    assert "zip" in detail


def test_inspect_refuses_bad_images_with_4xx(api, tmp_path):
    c, op = api.client, api.user("operator")
    _ready_station(api, tmp_path)
    url = "/api/v1/stations/cam/inspect"

    def send(name, data):
        return c.post(url, files=[("files", (name, data, "image/png"))], headers=op)

    assert "too large" in _error(send("bomb.png", _png_claiming(20000, 20000)), 413)
    assert "over the limit" in _error(send("big.png", _png_claiming(7000, 7000)), 413)
    assert "not a readable image" in _error(send("corrupt.png", _png()[:60]), 400)
    assert "not a readable image" in _error(send("over the limit, too large.png", b"junk"), 400)  # not a 413
    assert "not a readable image" in _error(send("text.png", b"GIF89a but not really"), 400)
    assert "empty" in _error(send("empty.png", b""), 400)
    _error(c.post(url, headers=op), 422)  # no files
    _error(c.post("/api/v1/stations/nope/inspect", files=[("files", ("a.png", _png(), "image/png"))], headers=op), 404)


def test_inactive_model_and_unknown_names(api):
    c, eng = api.client, api.user("engineer")
    from linewatch.store.tables import ModelVersion

    with api.ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m", method="patchcore", backbone="b", image_size=64, status="training")
        s.add(mv)
        s.flush()
        model_id = mv.id
    c.post("/api/v1/stations", json={"name": "cam"}, headers=eng)
    assert "not ready" in _error(
        c.post(f"/api/v1/models/{model_id}/activate", json={"station": "cam"}, headers=eng), 409
    )
    _error(c.post("/api/v1/models/999/activate", json={"station": "cam"}, headers=eng), 404)
    _error(c.post("/api/v1/stations/unknown/rollback", headers=eng), 404)
    assert "no active model" in _error(
        c.post("/api/v1/stations/cam/inspect", files=[("files", ("a.png", _png(), "image/png"))], headers=eng), 409
    )


def test_long_dataset_name_gives_a_model_name_that_fits(api):
    """The default model name is "<dataset> #<job>": it must fit the 200 characters of the column."""
    c, eng = api.client, api.user("engineer")
    ds = c.post("/api/v1/datasets", json={"name": "d" * 200}, headers=eng).json()
    r = c.post("/api/v1/jobs/train", json={"dataset_id": ds["id"]}, headers=eng)
    assert r.status_code == 202, r.text
    names = [m["name"] for m in c.get("/api/v1/models", headers=eng).json()]
    assert len(names) == 1 and len(names[0]) <= 200 and names[0].endswith(f" #{r.json()['id']}")


def test_405_lists_every_method_of_the_path(api):
    c, adm = api.client, api.user("admin")
    r = c.get("/api/v1/jobs/train", headers=adm)
    _error(r, 405)
    assert r.headers["allow"] == "POST"
    r = c.put("/api/v1/users", headers=adm)
    _error(r, 405)
    assert r.headers["allow"] == "GET, HEAD, POST"


def test_wrong_role_and_bad_credentials(api):
    c = api.client
    assert "role" in _error(c.post("/api/v1/stations", json={"name": "s"}, headers=api.user("viewer")), 403)
    _error(c.get("/api/v1/stations", headers={"Authorization": "Bearer nonsense"}), 401)
    _error(c.get("/api/v1/stations", headers={"X-API-Key": "lwk_nonsense"}), 401)
    _error(c.get("/api/v1/stations"), 401)


def test_oversized_requests(tmp_path):
    """Over the limit: refused from Content-Length, and while a body without one (chunked) streams in."""
    from fastapi.testclient import TestClient

    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=10_000)
    ctx = build_context(settings)
    try:
        with TestClient(create_app(settings, ctx)) as c:
            from linewatch.services.accounts import create_user

            with ctx.sessions() as s, s.begin():
                create_user(s, "eng", "password-eng", "engineer")
            token = c.post("/api/v1/auth/login", json={"username": "eng", "password": "password-eng"}).json()
            eng = {"Authorization": f"Bearer {token['access_token']}"}
            ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
            url = f"/api/v1/datasets/{ds['id']}/images"
            big = [("files", ("a.png", b"\x00" * 20_000, "image/png"))]
            assert "10,000 bytes" in _error(c.post(url, files=big, headers=eng), 413)

            def chunks():  # a well-formed multipart body, sent chunked (no Content-Length)
                yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
                for _ in range(30):
                    yield b"x" * 1000
                yield b"\r\n--b--\r\n"

            r = c.post(url, content=chunks(), headers={**eng, "content-type": "multipart/form-data; boundary=b"})
            assert "10,000 bytes" in _error(r, 413)
            for bad in (b"abc", b"-1", b"\xb2"):  # "\xb2" is "²": isdigit() but not int()
                _error(c.post(url, content=b"x", headers={**eng, "content-length": bad}), 400)
            # more digits than Python's int() reads: still a 413, not an error of the server
            assert "bytes" in _error(c.post(url, content=b"x", headers={**eng, "content-length": "9" * 5000}), 413)
    finally:
        ctx.engine.dispose()


def test_clean_filename():
    from linewatch.services.inspecting import clean_filename

    assert clean_filename("a\x00b\nc.png") == "abc.png"
    assert clean_filename("\ud800.png") == "?.png"
    assert len(clean_filename("x" * 1000)) == 300
    assert clean_filename(None) is None and clean_filename("", "upload") == "upload"
    assert clean_filename("\x00\x01", "upload") == "upload"


def test_bodies_and_files_nested_too_deeply_are_400(api):
    c, admin = api.client, api.user("admin")
    deep = b"[" * 100_000 + b"]" * 100_000
    json_type = {**admin, "content-type": "application/json"}
    _error(c.post("/api/v1/lines", content=b'{"name": ' + deep + b"}", headers=json_type), 400)
    for name, data in (("plant.yaml", b"lines: " + deep), ("plant.json", b'{"lines": ' + deep + b"}")):
        r = c.post("/api/v1/machines/import", files={"file": (name, data)}, headers=admin)
        assert _error(r, 400) == f"{name} is nested too deeply to read"


def test_a_model_without_a_threshold_is_neither_trained_nor_activated_for_a_station(api, tmp_path):
    import json

    from linewatch.store.tables import ModelVersion

    c, eng = api.client, api.user("engineer")
    json_type = {**eng, "content-type": "application/json"}
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
    for method in ("patchcore", "padim"):
        body = {"dataset_id": ds["id"], "method": method, "holdout": 0}
        _error(c.post("/api/v1/jobs/train", json=body, headers=eng), 422)  # the schema says holdout > 0
        nan = json.dumps({**body, "holdout": float("nan")})  # Python's JSON writes NaN, and reads it
        _error(c.post("/api/v1/jobs/train", content=nan, headers=json_type), 422)
    c.post("/api/v1/stations", json={"name": "cam"}, headers=eng)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 1, "calibration": None}))
    with api.ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m", method="padim", backbone="b", image_size=64, status="ready", path=str(tmp_path))
        s.add(mv)
        s.flush()
        model_id = mv.id
    r = c.post(f"/api/v1/models/{model_id}/activate", json={"station": "cam"}, headers=eng)
    assert "has no threshold" in _error(r, 409)


def test_a_station_name_of_dots_alone_is_refused(api):
    c, eng = api.client, api.user("engineer")
    for name in (".", "..", "..."):
        assert _error(c.post("/api/v1/stations", json={"name": name}, headers=eng), 422)
    assert c.post("/api/v1/stations", json={"name": "cam.2"}, headers=eng).status_code == 201


def test_zip_folder_names_become_labels_an_upload_could_give():
    from pathlib import PurePosixPath

    from linewatch.services.datasets import _zip_label

    for member, label in [
        ("test/crack/001.png", "crack"),
        ("test/weird label!/001.png", "weird_label_"),
        ("../../001.png", "good"),
        ("x/../001.png", "good"),
        ("ground_truth/hole/001_mask.png", "hole"),
        ("001.png", "good"),
    ]:
        assert _zip_label(PurePosixPath(member), "good") == label, member


def test_a_mistake_between_training_parameters_is_a_400_before_any_job(api):
    from linewatch.store.tables import Job

    c, eng = api.client, api.user("engineer")
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
    for body, said in (
        ({"center_crop": 128, "image_size": 64}, "center crop 128 must be between 32 and the image size (64)"),
        ({"image_size": 64, "min_region_area": 5000}, "min_region_area 5000 is more than the model input's 4096"),
    ):
        r = c.post("/api/v1/jobs/train", json={"dataset_id": ds["id"], **body}, headers=eng)
        assert said in _error(r, 400)
    for body in ({"search_vectors": "nope"}, {"auto": "yes"}, {"method": "patchcore", "search": "fast"}):
        r = c.post("/api/v1/jobs/train", json={"dataset_id": ds["id"], **body}, headers=eng)
        _error(r, 422)  # the schema lists each choice
    with api.ctx.sessions() as s:
        assert s.query(Job).count() == 0
