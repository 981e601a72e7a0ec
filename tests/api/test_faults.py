"""Faults and load with the real parts: PostgreSQL and an S3 server (moto) behind a TCP proxy that can cut them
off; many clients inspecting at once against a real ``linewatch serve``.

Nothing here mocks the database or the blob store: an outage is the proxy closing every connection and refusing
new ones, as a restarting server or a broken network link does."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

BUCKET = "faults"
S3_CREDS = {"s3_access_key": "testing", "s3_secret_key": "testing", "s3_region": "us-east-1"}
OUTAGE_LIMIT_S = 6.0  # a request while a part refuses connections answers within this
DB_STALL_LIMIT_S = 9.0  # ... while the database hangs: its connect timeout is 5 s
S3_STALL_LIMIT_S = 14.0  # ... while S3 hangs: two attempts of 5 s


# --- a TCP proxy that can cut a part off ---


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``pause()`` closes every connection and refuses new ones (the
    port stops listening: a part that is down); ``pause(stall=True)`` closes every connection and accepts new
    ones but never answers (a part that hangs, or a network that drops packets); ``resume()`` forwards again,
    on the same port."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._stall = False
        self.port = 0
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        sock.settimeout(0.05)
        self.port = sock.getsockname()[1]
        self._listener = sock

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            if self._stall:
                with self._lock:
                    self._conns.add(client)  # held open, never answered, closed by resume()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener or self._stall:  # paused while connecting
                    client.close()
                    upstream.close()
                    continue
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._close(s)

    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._conns.discard(sock)

    def _close_all(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            self._close(s)

    def pause(self, stall: bool = False) -> None:
        with self._lock:
            self._stall = stall
            listener = None
            if not stall:
                listener, self._listener = self._listener, None
            elif self._listener is None:
                self._listen()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # stops listening now, not when accept() next returns
            listener.close()
        self._close_all()

    def resume(self) -> None:
        with self._lock:
            self._stall = False
            if self._listener is None:
                self._listen()
        self._close_all()  # connections held by a stall

    def close(self) -> None:
        self._stopped.set()
        self.pause()
        self._thread.join(timeout=2)


@pytest.fixture
def proxies():
    made: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        p = TcpProxy(host, port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# --- the parts ---


@pytest.fixture
def pg_db(postgres):
    name = postgres.create("lw_faults")
    yield name
    postgres.drop(name)


@pytest.fixture
def bucket(moto_s3):
    """A fresh bucket on the moto server: (name, client talking to moto directly)."""
    client = moto_s3.client()
    name = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    return name, client


# --- the service ---


class Service:
    """The app on a TestClient with logged-in users."""

    def __init__(self, client: TestClient, ctx):
        self.client = client
        self.ctx = ctx
        self.headers: dict[str, dict] = {}
        self.passwords: dict[str, str] = {}

    def user(self, role: str) -> dict:
        if role not in self.headers:
            from linewatch.services.accounts import create_user

            self.passwords[role] = "password-" + role
            with self.ctx.sessions() as s, s.begin():
                create_user(s, f"{role}-user", self.passwords[role], role)
            r = self.login(role)
            assert r.status_code == 200, r.text
            self.headers[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return self.headers[role]

    def login(self, role: str):
        return self.client.post(
            "/api/v1/auth/login", json={"username": f"{role}-user", "password": self.passwords[role]}
        )


@contextlib.contextmanager
def _service(settings):
    from linewatch.api.app import build_context, create_app

    ctx = build_context(settings)
    try:
        with TestClient(create_app(settings, ctx)) as client:
            yield Service(client, ctx)
    finally:
        ctx.engine.dispose()


def _train_and_activate(client, good_zip: bytes, eng: dict, station: str = "cam1") -> int:
    ds = client.post("/api/v1/datasets", json={"name": "washers"}, headers=eng)
    assert ds.status_code == 201, ds.text
    ds_id = ds.json()["id"]
    up = client.post(
        f"/api/v1/datasets/{ds_id}/images", files=[("files", ("good.zip", good_zip, "application/zip"))], headers=eng
    )
    assert up.status_code == 200, up.text
    job = client.post("/api/v1/jobs/train", json={"dataset_id": ds_id, "image_size": 64}, headers=eng)
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 120
    while True:
        j = client.get(f"/api/v1/jobs/{job.json()['id']}", headers=eng).json()
        if j["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert j["status"] == "succeeded", j
    model_id = j["result"]["model_id"]
    assert client.post("/api/v1/stations", json={"name": station}, headers=eng).status_code == 201
    r = client.post(f"/api/v1/models/{model_id}/activate", json={"station": station}, headers=eng)
    assert r.status_code == 200, r.text
    return model_id


@pytest.fixture(scope="module")
def model_dir(synthetic, tmp_path_factory) -> Path:
    """A model trained once, as a training job does (PatchCore at 64 px on the 12 images of ``good_zip``, with
    its ONNX export), for the tests whose subject is not training: each registers it with ``_use_model``."""
    from linewatch.vision.export import export_onnx
    from linewatch.vision.saving import create_detector, save

    det = create_detector("patchcore", backbone="efficientnet_lite0", image_size=64)
    det.fit(sorted((synthetic / "train" / "good").iterdir())[:12])
    out = save(det, tmp_path_factory.mktemp("faults-model") / "model")
    export_onnx(out)
    return out


def _use_model(sessions, client, model_dir: Path, eng: dict, station: str = "cam1") -> int:
    """Register the ready model of ``model_dir`` in the database, then activate it for a new station (API)."""
    from linewatch.store.tables import ModelVersion

    with sessions() as s, s.begin():
        mv = ModelVersion(
            name="faults", method="patchcore", backbone="efficientnet_lite0", image_size=64, status="ready"
        )
        mv.path = str(model_dir.resolve())
        s.add(mv)
    assert client.post("/api/v1/stations", json={"name": station}, headers=eng).status_code == 201
    r = client.post(f"/api/v1/models/{mv.id}/activate", json={"station": station}, headers=eng)
    assert r.status_code == 200, r.text
    return mv.id


def _images(synthetic: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every test image of the synthetic set: distinct contents."""
    paths = sorted((synthetic / "test").rglob("*.png"))
    return [(f"{p.parent.name}-{p.name}", p.read_bytes()) for p in paths]


def _files(images: list[tuple[str, bytes]]) -> list:
    return [("files", (name, data, "image/png")) for name, data in images]


def _timed(fn, *args, limit: float = OUTAGE_LIMIT_S, **kwargs):
    started = time.monotonic()
    r = fn(*args, **kwargs)
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"the request took {elapsed:.1f} s while the part was down"
    return r


def _assert_503(r) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body


def _rows(ctx) -> list:
    from sqlalchemy import select

    from linewatch.store.tables import Inspection

    with ctx.sessions() as s:
        return list(s.scalars(select(Inspection).order_by(Inspection.id)))


def _assert_blobs_complete(root: Path) -> None:
    """Every file under the blob directory is a whole blob: named by the SHA-256 of its bytes; no temp files."""
    for p in root.rglob("*"):
        if p.is_file():
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name, f"half-written or stray blob file {p}"


class PauseAfterPuts:
    """A blob store that forwards everything and cuts a part off (pauses its proxy) once ``after`` puts
    succeeded: an outage that starts in the middle of a request. The store and the part stay real."""

    def __init__(self, store, proxy: TcpProxy, after: int):
        self.store, self.proxy, self.after = store, proxy, after

    def put(self, data: bytes) -> str:
        key = self.store.put(data)
        self.after -= 1
        if self.after == 0:
            self.proxy.pause()
        return key

    def __getattr__(self, name):
        return getattr(self.store, name)


# --- 1. database outage ---


def test_database_outage_answers_503_and_recovers(tmp_path, pg_db, postgres, proxies, model_dir, synthetic):
    from linewatch.config import Settings

    proxy = proxies(postgres.host, postgres.port)
    blob_dir = tmp_path / "blobs"
    url = postgres.url(pg_db, proxy.port)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, blob_url=str(blob_dir))
    images = _images(synthetic)
    before, during, mid = images[:2], images[2:5], images[5:8]
    with _service(settings) as svc:
        c = svc.client
        eng, op = svc.user("engineer"), svc.user("operator")
        _use_model(svc.ctx.sessions, c, model_dir, eng)
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(before), headers=op)
        assert r.status_code == 200, r.text
        assert c.get("/readyz").status_code == 200

        proxy.pause()
        _assert_503(_timed(c.post, "/api/v1/stations/cam1/inspect", files=_files(during), headers=op))
        _assert_503(_timed(c.get, "/api/v1/inspections", headers=op))
        _assert_503(_timed(svc.login, "operator"))
        ready = _timed(c.get, "/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok", ready.text
        assert c.get("/healthz").status_code == 200  # the process itself is fine
        with pytest.raises(WebSocketDisconnect) as closed:  # noqa: SIM117
            with c.websocket_connect("/api/v1/events", headers=op) as ws:
                ws.receive_json()
        assert closed.value.code == 1013  # try again later

        proxy.resume()  # no restart: the same app serves again
        assert c.get("/readyz").status_code == 200
        assert svc.login("operator").status_code == 200
        listed = c.get("/api/v1/inspections", headers=op)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == len(before)
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(during[:1]), headers=op)
        assert r.status_code == 200, r.text

        # The database hangs (a dead host, a dropped link): connecting times out, requests answer 503 in
        # seconds, and the event loop keeps serving meanwhile.
        proxy.pause(stall=True)
        slow: dict = {}

        def send() -> None:
            files = _files(during)
            slow["r"] = _timed(c.post, "/api/v1/stations/cam1/inspect", files=files, headers=op, limit=DB_STALL_LIMIT_S)

        inspecting = threading.Thread(target=send)
        inspecting.start()
        time.sleep(0.5)
        assert _timed(c.get, "/healthz", limit=1.0).status_code == 200
        inspecting.join()
        _assert_503(slow["r"])
        ready = _timed(c.get, "/readyz", limit=DB_STALL_LIMIT_S)
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok", ready.text
        proxy.resume()
        assert c.get("/api/v1/inspections", headers=op).status_code == 200

        # The database goes away in the middle of a request: after the second of its three images was scored and
        # stored. The whole request fails; none of its images has a row (not even the first, scored before).
        svc.ctx.blobs = PauseAfterPuts(svc.ctx.blobs, proxy, after=4)
        _assert_503(_timed(c.post, "/api/v1/stations/cam1/inspect", files=_files(mid), headers=op))
        svc.ctx.blobs = svc.ctx.blobs.store
        proxy.resume()
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(mid[1:2]), headers=op)
        assert r.status_code == 200, r.text

        rows = _rows(svc.ctx)
        stored = {row.image_sha256 for row in rows}
        sha = {name: hashlib.sha256(data).hexdigest() for name, data in images}
        assert {sha[n] for n, _ in before} <= stored
        assert sha[during[0][0]] in stored  # sent again after the outage
        assert not {sha[n] for n, _ in during[1:]} & stored  # only ever sent during the outage
        assert sha[mid[0][0]] not in stored and sha[mid[2][0]] not in stored  # the request cut off midway
        assert len(rows) == len(before) + 2
        for row in rows:
            assert svc.ctx.blobs.exists(row.image_sha256) and svc.ctx.blobs.exists(row.heatmap_sha256)
        _assert_blobs_complete(blob_dir)


# --- 2. blob store (S3) outage ---


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_s3_outage_answers_503_and_recovers(
    tmp_path, database, postgres, moto_s3, bucket, proxies, good_zip, synthetic
):
    from sqlalchemy import select

    from linewatch.config import Settings
    from linewatch.store.tables import DatasetImage

    db_name = postgres.create("lw_faults") if database == "postgresql" else None
    bucket_name, s3 = bucket
    proxy = proxies(moto_s3.host, moto_s3.port)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres.url(db_name) if db_name else None,
        blob_url=f"s3://{bucket_name}/blobs",
        s3_endpoint_url=f"http://127.0.0.1:{proxy.port}",
        **S3_CREDS,
    )
    images = _images(synthetic)
    try:
        with _service(settings) as svc:
            c = svc.client
            eng, op = svc.user("engineer"), svc.user("operator")
            _train_and_activate(c, good_zip, eng)
            # training read its images from the bucket: every dataset image is an object there
            objects = {
                o["Key"].rsplit("/", 1)[1]
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix="blobs/")
                for o in page.get("Contents", [])
            }
            with svc.ctx.sessions() as s:
                dataset_keys = set(s.scalars(select(DatasetImage.sha256)))
            assert len(dataset_keys) == 12 and dataset_keys <= objects
            r = c.post("/api/v1/stations/cam1/inspect", files=_files(images[:2]), headers=op)
            assert r.status_code == 200, r.text

            proxy.pause()
            _assert_503(_timed(c.post, "/api/v1/stations/cam1/inspect", files=_files(images[2:4]), headers=op))
            ready = _timed(c.get, "/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["blobs"] != "ok", ready.text
            assert ready.json()["checks"]["database"] == "ok"
            first = r.json()[0]
            _assert_503(_timed(c.get, first["image_url"], headers=op))
            assert c.get("/api/v1/inspections", headers=op).status_code == 200  # the database still answers
            assert len(_rows(svc.ctx)) == 2

            proxy.resume()
            assert c.get("/readyz").status_code == 200
            r = c.post("/api/v1/stations/cam1/inspect", files=_files(images[2:3]), headers=op)
            assert r.status_code == 200, r.text
            assert c.get(first["image_url"], headers=op).content == images[0][1]

            # S3 hangs: the request gives up within two attempts' timeouts
            proxy.pause(stall=True)
            r = _timed(
                c.post, "/api/v1/stations/cam1/inspect", files=_files(images[3:4]), headers=op, limit=S3_STALL_LIMIT_S
            )
            _assert_503(r)
            proxy.resume()

            # S3 goes away in the middle of a request: the first image's blobs are stored, the second's cannot
            # be; no row for any image of it
            svc.ctx.blobs = PauseAfterPuts(svc.ctx.blobs, proxy, after=2)
            _assert_503(_timed(c.post, "/api/v1/stations/cam1/inspect", files=_files(images[4:6]), headers=op))
            svc.ctx.blobs = svc.ctx.blobs.store
            proxy.resume()

            rows = _rows(svc.ctx)
            assert len(rows) == 3
            sent_during = {hashlib.sha256(d).hexdigest() for _, d in images[3:6]}
            assert not sent_during & {row.image_sha256 for row in rows}
            for row in rows:
                for key in (row.image_sha256, row.heatmap_sha256):
                    body = s3.get_object(Bucket=bucket_name, Key=f"blobs/{key}")["Body"].read()
                    assert hashlib.sha256(body).hexdigest() == key
    finally:
        if db_name:
            postgres.drop(db_name)


# --- 3. many clients at once, real server, real PostgreSQL ---


@pytest.mark.parametrize("blob_backend", ["file", "s3"])
def test_concurrent_clients_lose_no_inspection(
    tmp_path, pg_db, postgres, blob_backend, request, model_dir, synthetic, linewatch_processes
):
    import httpx
    from sqlalchemy import func, select

    from linewatch.services.accounts import create_user
    from linewatch.store.blobs import open_blob_store
    from linewatch.store.db import make_engine, migrate, session_factory
    from linewatch.store.tables import Inspection

    url = postgres.url(pg_db)
    env = linewatch_processes.env(LINEWATCH_DATA_DIR=str(tmp_path / "data"), LINEWATCH_DATABASE_URL=url)
    blob_kw = {}
    if blob_backend == "s3":
        endpoint = request.getfixturevalue("moto_s3").endpoint
        bucket_name, _ = request.getfixturevalue("bucket")
        env |= {
            "LINEWATCH_BLOB_URL": f"s3://{bucket_name}/blobs",
            "LINEWATCH_S3_ENDPOINT_URL": endpoint,
            **{f"LINEWATCH_{k.upper()}": v for k, v in S3_CREDS.items()},
        }
        blob_kw = {k.removeprefix("s3_"): v for k, v in S3_CREDS.items()} | {"endpoint_url": endpoint}
        blobs = open_blob_store(f"s3://{bucket_name}/blobs", **blob_kw)
    else:
        blobs = open_blob_store(str(tmp_path / "data" / "blobs"))
    engine = make_engine(url)
    migrate(engine)
    with session_factory(engine)() as s, s.begin():
        create_user(s, "eng", "password-eng", "engineer")
        create_user(s, "op", "password-op", "operator")

    images = _images(synthetic)
    clients, rounds = 12, 3
    with linewatch_processes() as procs:
        base, _ = procs.serve(tmp_path / "serve.log", env)
        with httpx.Client(base_url=base, timeout=120) as http:

            def login(name: str) -> dict:
                r = http.post("/api/v1/auth/login", json={"username": name, "password": f"password-{name}"})
                assert r.status_code == 200, r.text
                return {"Authorization": f"Bearer {r.json()['access_token']}"}

            eng, op = login("eng"), login("op")
            _use_model(session_factory(engine), http, model_dir, eng)

            accepted: list[dict] = []
            failures: list[str] = []
            lock = threading.Lock()
            start = threading.Barrier(clients)

            def client(i: int) -> None:
                with httpx.Client(base_url=base, timeout=120) as mine:
                    start.wait()
                    for k in range(rounds):
                        # a distinct image, plus one every client sends (same bytes, same blob, separate rows)
                        batch = [images[(i * rounds + k) % len(images)], images[0]]
                        r = mine.post("/api/v1/stations/cam1/inspect", files=_files(batch[: 1 + k % 2]), headers=op)
                        with lock:
                            if r.status_code == 200:
                                accepted.extend(r.json())
                            else:
                                failures.append(f"{r.status_code} {r.text[:200]}")

            threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            assert not any(t.is_alive() for t in threads), "a client hung"
            assert not failures, failures

            sent = sum(1 + k % 2 for k in range(rounds)) * clients
            assert len(accepted) == sent
            ids = [x["id"] for x in accepted]
            assert len(set(ids)) == len(ids)
            with session_factory(engine)() as s:
                rows = {row.id: row for row in s.scalars(select(Inspection))}
                assert s.scalar(select(func.count()).select_from(Inspection)) == len(accepted)
            assert set(rows) == set(ids)
            for x in accepted:
                row = rows[x["id"]]
                assert row.image_sha256 == x["image_sha256"]
                assert blobs.exists(row.image_sha256) and blobs.exists(row.heatmap_sha256)
            assert sum(1 for x in accepted if x["image_sha256"] == hashlib.sha256(images[0][1]).hexdigest()) >= clients
            listed = http.get("/api/v1/inspections", params={"limit": 500}, headers=op).json()["items"]
            assert sorted(x["id"] for x in listed) == sorted(ids)
            one = accepted[len(accepted) // 2]
            got = http.get(one["image_url"], headers=op)
            assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == one["image_sha256"]
    engine.dispose()
    if blob_backend == "file":
        _assert_blobs_complete(tmp_path / "data" / "blobs")


def test_a_request_with_a_bad_image_stores_none_of_its_images(tmp_path, model_dir, synthetic):
    """All or nothing also when the request itself is at fault: a corrupt image after good ones."""
    from linewatch.config import Settings

    images = _images(synthetic)
    with _service(Settings(data_dir=tmp_path / "data")) as svc:
        c = svc.client
        eng, op = svc.user("engineer"), svc.user("operator")
        _use_model(svc.ctx.sessions, c, model_dir, eng)
        files = _files(images[:2]) + [("files", ("broken.png", images[2][1][:200], "image/png"))]
        r = c.post("/api/v1/stations/cam1/inspect", files=files, headers=op)
        assert r.status_code == 400, r.text
        assert _rows(svc.ctx) == []
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(images[:2]), headers=op)
        assert r.status_code == 200, r.text
        assert [row.id for row in _rows(svc.ctx)] == [x["id"] for x in r.json()]


def test_proxy_pauses_and_resumes():
    """The proxy itself: forwards, refuses while paused, forwards again after."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def echo():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    while data := conn.recv(1024):
                        conn.sendall(data)

        threading.Thread(target=echo, daemon=True).start()
        proxy = TcpProxy("127.0.0.1", port)
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
                s.sendall(b"ping")
                assert s.recv(4) == b"ping"
                proxy.pause()
                assert s.recv(4) == b""  # cut off
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
            proxy.resume()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
                s.sendall(b"pong")
                assert s.recv(4) == b"pong"
        finally:
            proxy.close()


def _heat_key(ctx, inspection_id: int) -> str:
    from linewatch.store.tables import Inspection

    with ctx.sessions() as s:
        return s.get(Inspection, inspection_id).heatmap_sha256


def test_a_scoring_error_is_reported_even_when_the_image_store_fails_beside_it(tmp_path, model_dir, synthetic):
    """The upload is stored and hashed on another thread while the model scores it: when both fail, the answer is
    scoring's error, the storing has finished before the answer, and no row is stored; when only the store fails,
    the answer is its 503, also when only the heatmap (stored while the rows are written) cannot be stored."""
    from linewatch.config import Settings
    from linewatch.errors import ModelFileError
    from linewatch.store.blobs import BlobStoreUnavailable

    images = _images(synthetic)
    with _service(Settings(data_dir=tmp_path / "data")) as svc:
        c = svc.client
        eng, op = svc.user("engineer"), svc.user("operator")
        _use_model(svc.ctx.sessions, c, model_dir, eng)
        finished = []

        def store_down(data: bytes) -> str:
            time.sleep(0.2)  # slower than the failing scoring below: the answer must wait for it
            finished.append(len(data))
            raise BlobStoreUnavailable("the image store is down")

        class Broken:
            calibration_ = None

            def predict(self, images):
                raise ModelFileError("the model file is damaged")

        real_get = svc.ctx.models.get
        svc.ctx.blobs.put = store_down
        svc.ctx.models.get = lambda model_id, path: Broken()
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(images[:1]), headers=op)
        assert r.status_code == 409 and "damaged" in r.json()["detail"], r.text
        assert finished == [len(images[0][1])]
        assert _rows(svc.ctx) == []

        svc.ctx.models.get = real_get  # scoring works, the store does not
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(images[:1]), headers=op)
        assert r.status_code == 503 and r.headers["Retry-After"], r.text
        assert _rows(svc.ctx) == []
        del svc.ctx.blobs.put
        real_put = svc.ctx.blobs.put

        def heatmaps_down(data: bytes) -> str:
            # the upload is stored; the heatmap, stored while the rows are written, is not: nothing is committed
            if data == images[1][1]:
                return real_put(data)
            time.sleep(0.2)
            raise BlobStoreUnavailable("the image store is down")

        svc.ctx.blobs.put = heatmaps_down
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(images[1:2]), headers=op)
        assert r.status_code == 503, r.text
        assert _rows(svc.ctx) == []
        del svc.ctx.blobs.put  # the store is back
        r = c.post("/api/v1/stations/cam1/inspect", files=_files(images[:2]), headers=op)
        assert r.status_code == 200, r.text
        assert [row.id for row in _rows(svc.ctx)] == [x["id"] for x in r.json()]
        for x in r.json():  # both blobs of each inspection are there
            assert svc.ctx.blobs.exists(x["image_sha256"]) and svc.ctx.blobs.exists(_heat_key(svc.ctx, x["id"]))
