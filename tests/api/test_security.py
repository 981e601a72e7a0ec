"""Issue 12: credentials checked against the user's current state, sign-in throttling, logout and token
revocation, security headers, station-scoped keys, /metrics and /docs settings, the audit log, bounded work per
request, the configurable format list, malformed HTTP answered in JSON."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import struct
import threading
import time
import zipfile
import zlib

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image


def _error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    return r.json()["detail"]


def _png(size=(16, 16), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny 1-bit PNG whose header says width x height."""
    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@contextlib.contextmanager
def _client(tmp_path, base_url: str = "http://testserver", **settings):
    """A TestClient on SQLite with these settings, and its context."""
    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    s = Settings(data_dir=tmp_path / "data", **settings)
    ctx = build_context(s)
    try:
        with TestClient(create_app(s, ctx), base_url=base_url) as client:
            yield client, ctx
    finally:
        ctx.engine.dispose()
        from linewatch.vision.images import set_formats

        set_formats(None)


def _user(ctx, name: str, role: str, password: str | None = None) -> int:
    from linewatch.services.accounts import create_user

    with ctx.sessions() as s, s.begin():
        return create_user(s, name, password or f"password-{name}", role).id


def _login(c, name: str, password: str | None = None) -> dict:
    r = c.post("/api/v1/auth/login", json={"username": name, "password": password or f"password-{name}"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _station(ctx, name: str, tmp_path) -> None:
    """A station whose active model is marked ready (no model file: enough to reach the request checks)."""
    from linewatch.store.tables import ModelVersion, Station

    with ctx.sessions() as s, s.begin():
        mv = ModelVersion(name="m", method="patchcore", backbone="b", image_size=64, status="ready", path=str(tmp_path))
        s.add(mv)
        s.flush()
        s.add(Station(name=name, active_model_id=mv.id))


# -- a key never acts above its owner's current role -------------------------------------------------------------
def test_a_demoted_admin_keeps_no_admin_power_through_an_api_key(api):
    c = api.client
    root = api.user("admin")
    _user(api.ctx, "alice", "admin")
    alice = _login(c, "alice")
    made = c.post("/api/v1/api-keys", json={"name": "alice-script", "role": "admin"}, headers=alice)
    assert made.status_code == 201, made.text
    key = {"X-API-Key": made.json()["key"]}
    assert c.get("/api/v1/users", headers=key).status_code == 200
    users = {u["name"]: u["id"] for u in c.get("/api/v1/users", headers=root).json()}

    assert c.patch(f"/api/v1/users/{users['alice']}", json={"role": "viewer"}, headers=root).status_code == 200
    _error(c.get("/api/v1/users", headers=alice), 403)
    _error(c.get("/api/v1/users", headers=key), 403)  # the key is demoted with its owner, at once
    _error(c.patch(f"/api/v1/users/{users['alice']}", json={"role": "admin"}, headers=key), 403)
    assert c.get("/api/v1/auth/me", headers=key).json()["role"] == "viewer"
    assert c.get("/api/v1/stations", headers=key).status_code == 200  # what a viewer may do, it still may

    # promoted again: the key is back to its own role, never above it
    assert c.patch(f"/api/v1/users/{users['alice']}", json={"role": "admin"}, headers=root).status_code == 200
    assert c.get("/api/v1/auth/me", headers=key).json()["role"] == "admin"
    # deactivated: every token and key refused at once
    assert c.patch(f"/api/v1/users/{users['alice']}", json={"active": False}, headers=root).status_code == 200
    _error(c.get("/api/v1/auth/me", headers=key), 401)
    _error(c.get("/api/v1/auth/me", headers=alice), 401)


def test_an_operator_key_of_an_admin_stays_an_operator_key(api):
    c = api.client
    admin = api.user("admin")
    key = c.post("/api/v1/api-keys", json={"name": "cam", "role": "operator"}, headers=admin).json()["key"]
    me = c.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()
    assert me["role"] == "operator" and me["via"] == "api_key"


# -- logout and revocation -----------------------------------------------------------------------------------------
def test_logout_ends_the_token(api):
    c = api.client
    _user(api.ctx, "bob", "operator")
    a, b = _login(c, "bob"), _login(c, "bob")
    assert c.post("/api/v1/auth/logout", headers=a).status_code == 204
    _error(c.get("/api/v1/auth/me", headers=a), 401)
    assert c.get("/api/v1/auth/me", headers=b).status_code == 200  # another session of the user goes on
    key = c.post("/api/v1/api-keys", json={"name": "k", "role": "viewer"}, headers=api.user("admin")).json()["key"]
    assert "API key" in _error(c.post("/api/v1/auth/logout", headers={"X-API-Key": key}), 409)
    _error(c.post("/api/v1/auth/logout"), 401)


@pytest.mark.parametrize("change", [{"password": "a-new-password"}, {"active": False}])
def test_password_change_and_deactivation_end_every_token(api, change):
    c = api.client
    admin = api.user("admin")
    uid = _user(api.ctx, "carol", "engineer")
    tokens = [_login(c, "carol"), _login(c, "carol")]
    assert c.patch(f"/api/v1/users/{uid}", json=change, headers=admin).status_code == 200
    for t in tokens:
        _error(c.get("/api/v1/auth/me", headers=t), 401)
    if "active" in change:
        assert c.patch(f"/api/v1/users/{uid}", json={"active": True}, headers=admin).status_code == 200
        for t in tokens:  # reactivation does not bring the old tokens back
            _error(c.get("/api/v1/auth/me", headers=t), 401)
        assert c.get("/api/v1/auth/me", headers=_login(c, "carol")).status_code == 200
    else:
        assert c.get("/api/v1/auth/me", headers=_login(c, "carol", "a-new-password")).status_code == 200


def test_reactivation_ends_tokens_made_before_it(tmp_path):
    """A token that survived somewhere (made just before the deactivation committed) does not come back."""
    from linewatch.services.accounts import Principal, login, update_user

    with _client(tmp_path) as (c, ctx):
        uid = _user(ctx, "dave", "viewer")
        _user(ctx, "root", "admin")
        with ctx.sessions() as s, s.begin():
            token, _ = login(s, "dave", "password-dave", 1)
        root = Principal(2, "root", "admin", "token")
        with ctx.sessions() as s:
            update_user(s, root, uid, active=True)  # reactivating an active user: still a fresh start
        _error(c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}), 401)


def test_passwords_are_stored_as_argon2id_at_owasp_strength(production_password_hasher):
    """The service's own hasher (the tests of this folder sign in with a cheaper one): argon2id with at least OWASP's
    least settings (19 MiB, two passes); a stored hash names them, so stronger settings later still check old ones."""
    from argon2 import Type

    h = production_password_hasher
    assert h.type is Type.ID and h.memory_cost >= 19 * 1024 and h.time_cost >= 2
    stored = h.hash("a password")
    assert stored.startswith("$argon2id$") and h.verify(stored, "a password")


# -- sign-in throttling --------------------------------------------------------------------------------------------
def test_failed_sign_ins_are_throttled_per_user_with_retry_after(tmp_path):
    with _client(tmp_path, login_failures_per_user=3, login_failures_per_client=100) as (c, ctx):
        _user(ctx, "erin", "viewer")
        _user(ctx, "frank", "viewer")
        for _ in range(3):
            _error(c.post("/api/v1/auth/login", json={"username": "erin", "password": "wrong-password"}), 401)
        r = c.post("/api/v1/auth/login", json={"username": "erin", "password": "password-erin"})
        assert "too many failed sign-ins" in _error(r, 429)  # even the right password, while throttled
        assert 1 <= int(r.headers["Retry-After"]) <= 300
        _login(c, "frank")  # another user is not affected
        # a success clears the user's count
        ctx.logins.throttle._failures.clear()
        _error(c.post("/api/v1/auth/login", json={"username": "erin", "password": "wrong"}), 401)
        _login(c, "erin")
        assert not ctx.logins.throttle._failures.get(("user", "erin"))


def test_failed_sign_ins_are_throttled_per_client(tmp_path):
    with _client(tmp_path, login_failures_per_user=100, login_failures_per_client=5) as (c, ctx):
        _user(ctx, "gina", "viewer")
        for n in range(5):
            _error(c.post("/api/v1/auth/login", json={"username": f"guess{n}", "password": "x"}), 401)
        r = c.post("/api/v1/auth/login", json={"username": "gina", "password": "password-gina"})
        _error(r, 429)
        assert int(r.headers["Retry-After"]) >= 1


def test_the_throttle_window_slides(monkeypatch):
    from linewatch.services import accounts

    t = [1000.0]
    monkeypatch.setattr(accounts.time, "monotonic", lambda: t[0])
    th = accounts.LoginThrottle(per_user=2, per_client=10, window_s=60)
    assert th.failed("u", "1.2.3.4") is False
    t[0] += 30
    assert th.failed("U", "1.2.3.4") is True  # names compare case-insensitively
    assert th.retry_after("u", None) == 30
    t[0] += 31
    assert th.retry_after("u", None) is None  # the first failure left the window
    big = accounts.LoginThrottle(per_user=2, per_client=2, window_s=60, max_keys=10)
    for n in range(100):
        big.failed(f"user{n}", None)
    assert len(big._failures) <= 10  # bounded memory


def test_parallel_wrong_passwords_do_not_stall_other_requests(tmp_path):
    """40 wrong passwords at once: at most ``login_concurrency`` argon2 checks run, the rest are refused once
    the user's limit is reached, and another request is answered while they queue."""
    with _client(tmp_path, login_failures_per_user=5, login_concurrency=2) as (c, ctx):
        _user(ctx, "hank", "viewer")
        running, peak = [0], [0]
        lock = threading.Lock()
        original = ctx.logins.sign_in

        def counting(*args):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                return original(*args)
            finally:
                with lock:
                    running[0] -= 1

        ctx.logins.sign_in = counting
        codes: list[int] = []

        def attempt():
            r = c.post("/api/v1/auth/login", json={"username": "hank", "password": "wrong-password"})
            codes.append(r.status_code)

        threads = [threading.Thread(target=attempt) for _ in range(40)]
        for t in threads:
            t.start()
        assert c.get("/healthz").status_code == 200  # answered while they queue (no worker thread waits)
        for t in threads:
            t.join()
        assert peak[0] <= 2
        # at most the limit, plus the checks already running when it was reached
        assert 5 <= codes.count(401) <= 5 + 2 - 1 and codes.count(401) + codes.count(429) == 40


# -- security headers ----------------------------------------------------------------------------------------------
def test_security_headers_on_the_dashboard_and_the_api(tmp_path):
    with _client(tmp_path) as (c, _ctx):
        for path in ("/", "/api/v1/auth/me", "/healthz", "/nope"):
            h = c.get(path).headers
            csp = h["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
            assert h["x-content-type-options"] == "nosniff"
            assert h["x-frame-options"] == "DENY"
            assert h["referrer-policy"] == "no-referrer"
            assert "strict-transport-security" not in h  # not over TLS
        assert "cdn.jsdelivr.net" in c.get("/docs").headers["content-security-policy"]
        assert (
            c.post("/api/v1/auth/login", content=b"x", headers={"content-length": "zz"}).headers["x-frame-options"]
            == "DENY"
        )
    with _client(tmp_path, base_url="https://testserver") as (c, _ctx):
        assert c.get("/healthz").headers["strict-transport-security"].startswith("max-age=")


# -- station-scoped API keys ---------------------------------------------------------------------------------------
def test_a_station_scoped_key_inspects_only_at_its_stations(tmp_path):
    with _client(tmp_path) as (c, ctx):
        _user(ctx, "root", "admin")
        root = _login(c, "root")
        _station(ctx, "cam1", tmp_path)
        _station(ctx, "cam2", tmp_path)
        made = c.post("/api/v1/api-keys", json={"name": "cam1", "role": "operator", "stations": ["cam1"]}, headers=root)
        assert made.status_code == 201, made.text
        assert made.json()["stations"] == ["cam1"]
        key = {"X-API-Key": made.json()["key"]}
        files = [("files", ("a.png", b"not an image", "image/png"))]
        assert "cam1 only" in _error(c.post("/api/v1/stations/cam2/inspect", files=files, headers=key), 403)
        # at its own station it gets through to the image checks
        assert "not a readable image" in _error(c.post("/api/v1/stations/cam1/inspect", files=files, headers=key), 400)
        where = {"model_station": "cam2"}
        _error(c.post("/api/v1/search", params=where, files={"file": ("a.png", b"x")}, headers=key), 403)
        assert c.get("/api/v1/auth/me", headers=key).json()["stations"] == ["cam1"]
        unknown = c.post("/api/v1/api-keys", json={"name": "x", "role": "operator", "stations": ["nope"]}, headers=root)
        assert "nope" in _error(unknown, 404)
        listed = {k["name"]: k["stations"] for k in c.get("/api/v1/api-keys", headers=root).json()}
        assert listed == {"cam1": ["cam1"]}


# -- /metrics and /docs --------------------------------------------------------------------------------------------
def test_metrics_and_docs_public_by_default(tmp_path):
    with _client(tmp_path) as (c, _ctx):
        assert c.get("/metrics").status_code == 200
        assert c.get("/docs").status_code == 200 and c.get("/openapi.json").status_code == 200


def test_metrics_and_docs_behind_auth(tmp_path):
    with _client(tmp_path, metrics_access="auth", docs_access="auth") as (c, ctx):
        for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
            _error(c.get(path), 401)
        _user(ctx, "ivy", "viewer")
        ivy = _login(c, "ivy")
        assert "linewatch_" in c.get("/metrics", headers=ivy).text
        assert c.get("/openapi.json", headers=ivy).json()["paths"]
        assert "swagger" in c.get("/docs", headers=ivy).text.lower()


def test_metrics_and_docs_off(tmp_path):
    with _client(tmp_path, metrics_access="off", docs_access="off") as (c, ctx):
        _user(ctx, "jack", "admin")
        jack = _login(c, "jack")
        for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
            _error(c.get(path, headers=jack), 404)


# -- the audit log -------------------------------------------------------------------------------------------------
def test_the_audit_log_records_who_did_what(api):
    c = api.client
    admin = api.user("admin")
    c.post("/api/v1/auth/login", json={"username": "admin-user", "password": "wrong"})
    c.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong"})
    made = c.post("/api/v1/users", json={"name": "kim", "password": "password-kim", "role": "operator"}, headers=admin)
    kim = made.json()["id"]
    c.patch(f"/api/v1/users/{kim}", json={"role": "engineer"}, headers=admin)
    c.patch(f"/api/v1/users/{kim}", json={"password": "another-password"}, headers=admin)
    key = c.post("/api/v1/api-keys", json={"name": "cam", "role": "operator"}, headers=admin).json()
    c.delete(f"/api/v1/api-keys/{key['id']}", headers=admin)
    c.post("/api/v1/stations", json={"name": "cam9"}, headers=admin)
    ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=admin).json()
    c.delete(f"/api/v1/datasets/{ds['id']}", headers=admin)
    c.post("/api/v1/auth/logout", headers=_login(c, "kim", "another-password"))

    page = c.get("/api/v1/audit", params={"limit": 1000}, headers=admin)
    assert page.status_code == 200, page.text
    entries = page.json()["items"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "auth.login",  # the admin fixture's
        "auth.login_failed",
        "auth.login_failed",
        "user.create",
        "user.update",
        "user.update",
        "api_key.create",
        "api_key.revoke",
        "station.create",
        "dataset.create",
        "dataset.delete",
        "auth.login",
        "auth.logout",
    ]
    newest = next(e for e in entries if e["action"] == "user.update")  # the password change
    assert newest["detail"] == {"password": "changed", "tokens_revoked": 0} and newest["target"] == "user kim"
    first = [e for e in entries if e["action"] == "user.update"][-1]
    assert first["detail"]["role"] == ["operator", "engineer"] and first["actor"] == "admin-user"
    failed = [e for e in entries if e["action"] == "auth.login_failed"]
    assert {e["actor"] for e in failed} == {"admin-user", "nobody"} and all(e["client"] for e in failed)
    assert "wrong" not in json.dumps(failed)  # the password tried is never stored
    # filters, paging
    users_only = c.get("/api/v1/audit", params={"action": "user"}, headers=admin).json()["items"]
    assert {e["action"] for e in users_only} == {"user.create", "user.update"}
    p1 = c.get("/api/v1/audit", params={"limit": 5}, headers=admin).json()
    p2 = c.get("/api/v1/audit", params={"limit": 5, "cursor": p1["next_cursor"]}, headers=admin).json()
    assert [e["id"] for e in p1["items"] + p2["items"]] == [e["id"] for e in entries[:10]]
    # admins only
    _error(c.get("/api/v1/audit", headers=api.user("engineer")), 403)
    _error(c.get("/api/v1/audit/export", headers=api.user("engineer")), 403)


def test_the_audit_log_exports_and_is_append_only(api):
    from sqlalchemy.exc import DatabaseError as SADatabaseError

    c = api.client
    admin = api.user("admin")
    c.post("/api/v1/auth/login", json={"username": "=cmd|' /C calc'!A0", "password": "wrong"})
    r = c.get("/api/v1/audit/export", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["action"] for x in rows] == ["auth.login", "auth.login_failed"]
    assert rows[1]["actor"].startswith("'=")  # not a formula to a spreadsheet
    lines = c.get("/api/v1/audit/export", params={"format": "jsonl"}, headers=admin).text.splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["auth.login", "auth.login_failed"]
    with api.ctx.engine.connect() as conn:
        for stmt in ("UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events"):
            with pytest.raises(SADatabaseError, match="append-only"), conn.begin():
                conn.execute(sa.text(stmt))
    assert len(c.get("/api/v1/audit", headers=admin).json()["items"]) == 2


# -- bounded work per request --------------------------------------------------------------------------------------
def test_inspect_refuses_too_many_files_and_too_many_pixels_before_decoding(tmp_path, monkeypatch):
    from linewatch.vision import images

    decoded = []
    real = images._decode
    monkeypatch.setattr(images, "_decode", lambda *a, **k: decoded.append(a[1]) or real(*a, **k))
    with _client(tmp_path, max_request_files=4, max_request_pixels=30_000_000) as (c, ctx):
        _user(ctx, "op", "operator")
        op = _login(c, "op")
        _station(ctx, "cam", tmp_path)
        url = "/api/v1/stations/cam/inspect"
        many = [("files", (f"{n}.png", _png(), "image/png")) for n in range(5)]
        assert "at most 4" in _error(c.post(url, files=many, headers=op), 413)
        # ten 6,300 x 6,300 images in a few KB: refused from their headers, none decoded
        big = [("files", (f"{n}.png", _png_claiming(3000, 3000), "image/png")) for n in range(4)]
        assert "pixels in all" in _error(c.post(url, files=big, headers=op), 413)
        assert decoded == []


def test_the_time_budget_refuses_a_slow_request_whole(tmp_path, monkeypatch):
    from concurrent.futures import Future

    from linewatch.services import inspecting

    with _client(tmp_path, request_time_budget_s=0.5) as (c, ctx):
        _user(ctx, "op", "operator")
        op = _login(c, "op")
        _station(ctx, "cam", tmp_path)

        def slow(*a):  # an image scored in 0.3 s, its heatmap already stored
            time.sleep(0.3)
            stored = Future()
            stored.set_result("key")
            return None, None, stored

        monkeypatch.setattr(inspecting, "_score", slow)
        files = [("files", (f"{n}.png", _png(), "image/png")) for n in range(4)]
        detail = _error(c.post("/api/v1/stations/cam/inspect", files=files, headers=op), 413)
        assert "over 0.5 s" in detail and "none stored" in detail


def test_perceptual_hash_and_fingerprint_work_on_reduced_images(monkeypatch):
    """A camera-sized image is never converted or hashed whole."""
    from linewatch.search.repeats import fingerprint
    from linewatch.services.inspecting import perceptual_hash

    img = Image.new("RGB", (6000, 4000), (120, 80, 40))
    sizes = []
    real_convert = Image.Image.convert

    def convert(self, *a, **k):
        sizes.append(self.size)
        return real_convert(self, *a, **k)

    monkeypatch.setattr(Image.Image, "convert", convert)
    perceptual_hash(img)
    assert fingerprint(img) is not None
    assert sizes and max(w * h for w, h in sizes) <= 200 * 200


# -- the format list -----------------------------------------------------------------------------------------------
def test_the_format_list_is_a_setting(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from linewatch.config import Settings
    from linewatch.vision import images

    assert Settings().image_formats == ("PNG", "JPEG", "BMP", "TIFF")
    monkeypatch.setenv("LINEWATCH_IMAGE_FORMATS", "png, jpg")
    assert Settings().image_formats == ("PNG", "JPEG")
    monkeypatch.setenv("LINEWATCH_IMAGE_FORMATS", "PNG,EPS")
    with pytest.raises(ValidationError, match="EPS"):
        Settings()
    monkeypatch.delenv("LINEWATCH_IMAGE_FORMATS")
    with _client(tmp_path, image_formats="PNG") as (c, ctx):
        _user(ctx, "op", "operator")
        op = _login(c, "op")
        _station(ctx, "cam", tmp_path)
        buf = io.BytesIO()
        Image.new("RGB", (32, 32)).save(buf, format="JPEG")
        r = c.post("/api/v1/stations/cam/inspect", files=[("files", ("a.jpg", buf.getvalue()))], headers=op)
        assert "not a PNG image" in _error(r, 400)
        assert images.image_suffixes() == {".png"}
    assert images.allowed_formats() == images.FORMATS
    # WebP allowed by the setting: decoded (the CLI reads the same variable)
    monkeypatch.setenv("LINEWATCH_IMAGE_FORMATS", "PNG,WEBP")
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="WEBP")
    assert images.open_image_bytes(buf.getvalue()).size == (32, 32)
    assert ".webp" in images.image_suffixes()


# -- malformed HTTP ------------------------------------------------------------------------------------------------
def _serve(app):
    import uvicorn

    from linewatch.api.server import http_protocol

    sock = socket.socket()  # bound here and handed over: no other process can take the port in between
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", http=http_protocol()))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, port


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",  # a control character in a header
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}",  # bad Content-Length
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"NOT A REQUEST\x00\r\n\r\n",
    ],
)
def test_malformed_http_is_answered_in_json(request_bytes):
    async def app(scope, receive, send):  # never reached: the parser refuses the request
        raise AssertionError("reached the app")

    server, thread, port = _serve(app)
    try:
        answer = _raw(port, request_bytes)
    finally:
        server.should_exit = True
        thread.join(5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["detail"].startswith("malformed HTTP request")


# -- control characters in filenames -------------------------------------------------------------------------------
def test_filenames_are_stored_without_control_characters(tmp_path):
    with _client(tmp_path) as (c, ctx):
        _user(ctx, "eng", "engineer")
        eng = _login(c, "eng")
        ds = c.post("/api/v1/datasets", json={"name": "d"}, headers=eng).json()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("good/a\x1b[31mred\x07.png", _png())
        # raw bytes: an HTTP client library would percent-encode the control characters of a file name
        body = (
            b"".join(
                b'--b\r\nContent-Disposition: form-data; name="files"; filename="' + name + b'"\r\n'
                b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
                for name, data in ((b"x\x01y\x7f.png", _png()), (b"z.zip", buf.getvalue()))
            )
            + b"--b--\r\n"
        )
        headers = {**eng, "content-type": "multipart/form-data; boundary=b"}
        r = c.post(f"/api/v1/datasets/{ds['id']}/images", content=body, headers=headers)
        assert r.status_code == 200, r.text
        from linewatch.store.tables import DatasetImage

        with ctx.sessions() as s:
            names = sorted(s.scalars(sa.select(DatasetImage.filename)))
        assert names == ["a[31mred.png", "xy.png"]


# -- what every camera request reads, kept for a moment ----------------------------------------------------------
def test_a_revoked_key_stops_at_once_and_a_change_by_another_process_within_the_cache_time(api, monkeypatch):
    c = api.client
    admin = api.user("admin")
    made = c.post("/api/v1/api-keys", json={"name": "cam", "role": "operator"}, headers=admin).json()
    key = {"X-API-Key": made["key"]}
    assert c.get("/api/v1/auth/me", headers=key).status_code == 200  # checked once: kept in the cache
    assert c.delete(f"/api/v1/api-keys/{made['id']}", headers=admin).status_code == 204
    _error(c.get("/api/v1/auth/me", headers=key), 401)  # this process revoked it: at once

    other = c.post("/api/v1/api-keys", json={"name": "cam2", "role": "operator"}, headers=admin).json()
    key2 = {"X-API-Key": other["key"]}
    assert c.get("/api/v1/auth/me", headers=key2).status_code == 200
    from linewatch.store.tables import ApiKey

    with api.ctx.sessions() as s, s.begin():  # as another process sharing the database would revoke it
        s.execute(sa.update(ApiKey).where(ApiKey.id == other["id"]).values(revoked=True))
    assert c.get("/api/v1/auth/me", headers=key2).status_code == 200  # still in this process's cache ...
    monkeypatch.setattr(api.ctx.keys, "ttl_s", 0.0)  # as if ttl_s had passed
    _error(c.get("/api/v1/auth/me", headers=key2), 401)  # ... for ttl_s at most
    _error(c.get("/api/v1/auth/me", headers={"X-API-Key": "lw_not-a-key"}), 401)
    assert len(api.ctx.keys._items) == 0  # failures are never kept


def test_the_cache_drops_expired_values_and_what_was_read_before_a_clear():
    from linewatch.services.context import TtlCache

    cache = TtlCache(ttl_s=10, size=2)
    g = cache.generation()
    cache.put("a", 1, g)
    assert cache.get("a") == 1 and cache.get("b") is None
    late = cache.generation()  # a lookup starts ...
    cache.clear()  # ... something changes while it reads ...
    cache.put("b", 2, late)  # ... so what it read is not kept
    assert cache.get("a") is None and cache.get("b") is None
    g = cache.generation()
    for k in "xyz":
        cache.put(k, k, g)
    assert cache.get("x") is None and cache.get("z") == "z"  # at most `size` values, the oldest go first
