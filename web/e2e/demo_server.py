"""A real ``linewatch serve`` with a demo model, for the dashboard's end-to-end tests and its performance script.

Seeds a fresh data dir (users of every role, a station ``line1`` running a PatchCore trained on the project's
synthetic parts with a labelled test set, so the Models page has its histogram and ROC curve), then replaces
itself with ``linewatch serve``. Seeding goes through the HTTP API in-process (FastAPI's TestClient), the way
an engineer would. ``python web/e2e/demo_server.py --port 8765 [--data-dir DIR]``; the data dir is a new temp
dir by default. Users: admin, engineer, operator, viewer; each one's password is ``<name>-password``."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

USERS = ["admin", "engineer", "operator", "viewer"]
IMAGE_SIZE = 128  # model input size: small, so the demo model trains in seconds on 2 cores


def password(name: str) -> str:
    return f"{name}-password"


def _zip(files: list[tuple[str, Path]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for arcname, path in files:
            z.write(path, arcname)
    return buf.getvalue()


def seed(data_dir: Path, images: Path) -> None:
    from fastapi.testclient import TestClient

    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings
    from linewatch.services.accounts import create_user
    from linewatch.vision.synthetic import make_dataset

    # seeding takes no readings: the MQTT settings (LINEWATCH_MQTT_*) are for the service it then becomes
    settings = Settings(data_dir=data_dir, database_url=None, blob_url=None, queue_url=None, mqtt_url=None)
    ctx = build_context(settings)
    with ctx.sessions() as s, s.begin():
        for name in USERS:
            create_user(s, name, password(name), name)
    synth = make_dataset(images / "washer", n_train=20, n_test_good=6, n_test_defect=3)
    with TestClient(create_app(settings, ctx)) as c:
        token = c.post("/api/v1/auth/login", json={"username": "engineer", "password": password("engineer")}).json()
        h = {"Authorization": f"Bearer {token['access_token']}"}
        train = c.post("/api/v1/datasets", json={"name": "washers, good"}, headers=h).json()
        good = sorted((synth / "train" / "good").iterdir())
        r = c.post(
            f"/api/v1/datasets/{train['id']}/images",
            files=[("files", ("good.zip", _zip([(f"good/{p.name}", p) for p in good]), "application/zip"))],
            headers=h,
        )
        r.raise_for_status()
        test = c.post("/api/v1/datasets", json={"name": "washers, test"}, headers=h).json()
        labelled = [(f"{p.parent.name}/{p.name}", p) for p in sorted((synth / "test").glob("*/*.png"))]
        c.post(
            f"/api/v1/datasets/{test['id']}/images",
            files=[("files", ("test.zip", _zip(labelled), "application/zip"))],
            headers=h,
        ).raise_for_status()
        job = c.post(
            "/api/v1/jobs/train",
            json={"dataset_id": train["id"], "test_dataset_id": test["id"], "image_size": IMAGE_SIZE, "name": "demo"},
            headers=h,
        ).json()
        started = time.monotonic()
        while True:
            j = c.get(f"/api/v1/jobs/{job['id']}", headers=h).json()
            if j["status"] not in ("queued", "running"):
                break
            if time.monotonic() - started > 600:
                sys.exit("demo model: training took over 10 minutes")
            time.sleep(0.2)
        if j["status"] != "succeeded":
            sys.exit(f"demo model: training {j['status']}: {j.get('error')}")
        for station in ("line1", "line2"):
            c.post("/api/v1/stations", json={"name": station}, headers=h).raise_for_status()
        c.post(
            f"/api/v1/models/{j['result']['model_id']}/activate", json={"station": "line1"}, headers=h
        ).raise_for_status()
        print(f"demo model #{j['result']['model_id']} trained in {time.monotonic() - started:.1f} s", flush=True)
        registry = os.environ.get("LINEWATCH_REGISTRY_URI")
        if registry:  # the team's model registry holds the demo model too, as "washer@production"
            from linewatch.core.modelregistry import push

            if registry.startswith("sqlite:///"):
                Path(registry[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            push(settings.models_dir / str(j["result"]["model_id"]), "washer", registry, alias="production")
    ctx.engine.dispose()
    # sample images for the tests to send: good and defective parts the model has not seen
    samples = data_dir.parent / "samples"
    samples.mkdir(exist_ok=True)
    for p in labelled:
        shutil.copy(p[1], samples / p[0].replace("/", "_"))
    (data_dir.parent / "train-good").mkdir(exist_ok=True)
    for p in good:
        shutil.copy(p, data_dir.parent / "train-good" / p.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--root", type=Path, help="folder for the data dir and sample images (default: a new temp dir)")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="linewatch-e2e-"))
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / "data"
    seed(data_dir, root / "images")
    (root / "READY").write_text(str(data_dir))
    print(f"demo data in {root}", flush=True)
    linewatch = shutil.which("linewatch") or sys.exit("linewatch is not on PATH: activate the virtualenv")
    serve = ["serve", "--host", args.host, "--port", str(args.port), "--data-dir", str(data_dir)]
    os.execv(linewatch, [linewatch, *serve])


if __name__ == "__main__":
    main()
