"""Repeat detection on real categories, through the inspection API: distinct photos must never be repeats,
copies of a photo always.

    python benchmarks/repeat_detection.py DATA_ROOT [DATA_ROOT ...]

Each DATA_ROOT is a category in MVTec layout (``test/<type>/*``). Per category: a service on a fresh data dir
(SQLite; ``duplicate_recent`` raised so every earlier upload of the station is a candidate), one station with a
PatchCore trained at 128 px on 16 of its good training images (the model does not take part in the decision), then
every test image uploaded once (all distinct files: each one flagged as a repeat is a false repeat), then five
copies of each (JPEG quality 90; PNG↔JPEG; a 1 px crop top-left; a 2 px crop bottom-right; a 2 px crop of all four
sides), each of which must be flagged as a repeat of its own original. Prints one Markdown table row per category.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from PIL import Image

IMAGE_TYPES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode).save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def copies(path: Path) -> dict[str, tuple[str, bytes]]:
    """Five copies of one photo: name -> (file name, bytes)."""
    img = Image.open(path)
    img.load()
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    other = "PNG" if fmt == "JPEG" else "JPEG"
    w, h = img.size
    ext = {"JPEG": ".jpg", "PNG": ".png"}
    return {
        "jpeg q90": ("copy.jpg", _encode(img, "JPEG")),
        "png↔jpeg": ("copy" + ext[other], _encode(img, other)),
        "crop 1 px": ("copy" + ext[fmt], _encode(img.crop((1, 1, w, h)), fmt)),
        "crop 2 px": ("copy" + ext[fmt], _encode(img.crop((0, 0, w - 2, h - 2)), fmt)),
        "crop 2 px all sides": ("copy" + ext[fmt], _encode(img.crop((2, 2, w - 2, h - 2)), fmt)),
    }


def run_category(root: Path) -> dict:
    from fastapi.testclient import TestClient

    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings
    from linewatch.services.accounts import create_user
    from linewatch.store.tables import ModelVersion
    from linewatch.vision.images import open_image
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import save

    tests = sorted(p for p in (root / "test").rglob("*") if p.suffix.lower() in IMAGE_TYPES)
    goods = sorted(p for p in (root / "train" / "good").iterdir() if p.suffix.lower() in IMAGE_TYPES)[:16]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save(PatchCore(image_size=128).fit([open_image(p) for p in goods]), Path(tmp) / "model")
        settings = Settings(data_dir=Path(tmp) / "data", duplicate_recent=100_000)
        ctx = build_context(settings)
        try:
            with TestClient(create_app(settings, ctx)) as client:
                with ctx.sessions() as s, s.begin():
                    create_user(s, "bench", "bench-password", "engineer")
                    mv = ModelVersion(
                        name="bench", method="patchcore", backbone="efficientnet_lite0", image_size=128, status="ready"
                    )
                    mv.path = str(model_dir.resolve())
                    s.add(mv)
                token = client.post("/api/v1/auth/login", json={"username": "bench", "password": "bench-password"})
                auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
                assert client.post("/api/v1/stations", json={"name": "line"}, headers=auth).status_code == 201
                r = client.post(f"/api/v1/models/{mv.id}/activate", json={"station": "line"}, headers=auth)
                assert r.status_code == 200, r.text

                def upload(name: str, data: bytes) -> dict:
                    r = client.post("/api/v1/stations/line/inspect", files=[("files", (name, data))], headers=auth)
                    if r.status_code != 200:
                        raise SystemExit(f"{name}: {r.status_code} {r.text}")
                    return r.json()[0]

                firsts = {p: upload(p.name, p.read_bytes()) for p in tests}
                false_repeats = [p for p, x in firsts.items() if x["duplicate_of"] is not None]
                caught, missed = 0, []
                for p, x in firsts.items():
                    for kind, (name, data) in copies(p).items():
                        got = upload(name, data)
                        if got["duplicate_of"] == x["id"]:
                            caught += 1
                        else:
                            missed.append(f"{p.relative_to(root)} ({kind})")
        finally:
            ctx.engine.dispose()
    return {"distinct": len(tests), "false": false_repeats, "copies": caught + len(missed), "missed": missed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="+", type=Path)
    args = ap.parse_args()
    print("| category | distinct images | flagged as repeats | copies | copies caught |")
    print("|---|---:|---:|---:|---:|")
    failed = False
    for root in args.roots:
        r = run_category(root)
        caught = r["copies"] - len(r["missed"])
        print(f"| {root.name} | {r['distinct']} | {len(r['false'])} | {r['copies']} | {caught} |", flush=True)
        for p in r["false"]:
            print(f"  false repeat: {p.relative_to(root)}", file=sys.stderr)
        for m in r["missed"]:
            print(f"  missed copy: {m}", file=sys.stderr)
        failed |= bool(r["false"] or r["missed"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
