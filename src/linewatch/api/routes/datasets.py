"""Datasets of good images for training: create, upload (many files or a zip), list, delete."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

from fastapi import APIRouter, Depends, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from linewatch.api.auth import Principal
from linewatch.api.context import AppContext
from linewatch.api.deps import ctx, db, engineer, viewer
from linewatch.api.schemas import DatasetIn, DatasetOut, UploadOut
from linewatch.errors import ImageError
from linewatch.store.tables import Dataset, DatasetImage
from linewatch.vision.images import IMAGE_SUFFIXES, open_image_bytes

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
NOT_FOUND = {404: {"description": "no such dataset"}}
MAX_ZIP_MEMBERS = 20_000


def _out(session: Session, d: Dataset) -> DatasetOut:
    n = session.scalar(select(func.count()).select_from(DatasetImage).where(DatasetImage.dataset_id == d.id))
    return DatasetOut(id=d.id, name=d.name, images=n or 0, created_at=d.created_at)


@router.post("", response_model=DatasetOut, status_code=201)
def create_dataset(body: DatasetIn, who: Principal = Depends(engineer), session: Session = Depends(db)):
    with session.begin():
        d = Dataset(name=body.name, created_by=who.user_id)
        session.add(d)
    return _out(session, d)


@router.get("", response_model=list[DatasetOut])
def list_datasets(_=Depends(viewer), session: Session = Depends(db)):
    return [_out(session, d) for d in session.scalars(select(Dataset).order_by(Dataset.id.desc()))]


@router.get("/{dataset_id}", response_model=DatasetOut, responses=NOT_FOUND)
def get_dataset(dataset_id: int, _=Depends(viewer), session: Session = Depends(db)):
    d = session.get(Dataset, dataset_id)
    if d is None:
        raise HTTPException(404, f"no dataset {dataset_id}")
    return _out(session, d)


@router.delete("/{dataset_id}", status_code=204, responses=NOT_FOUND)
def delete_dataset(dataset_id: int, _=Depends(engineer), session: Session = Depends(db)):
    with session.begin():
        d = session.get(Dataset, dataset_id)
        if d is None:
            raise HTTPException(404, f"no dataset {dataset_id}")
        session.execute(delete(DatasetImage).where(DatasetImage.dataset_id == dataset_id))
        session.delete(d)


def _members(upload_name: str, data: bytes) -> list[tuple[str, bytes]]:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return [(upload_name, data)]
    out = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            if len(infos) > MAX_ZIP_MEMBERS:
                raise HTTPException(413, f"zip holds {len(infos)} files; at most {MAX_ZIP_MEMBERS}")
            for info in infos:
                name = PurePosixPath(info.filename)
                if name.suffix.lower() not in IMAGE_SUFFIXES or name.name.startswith("."):
                    continue
                if info.file_size > 100 * 1024 * 1024:
                    raise HTTPException(413, f"{info.filename} in the zip is over 100 MB")
                out.append((name.name, z.read(info)))
    except zipfile.BadZipFile as e:
        raise HTTPException(400, f"{upload_name}: corrupt zip ({e})") from None
    return out


def _store(c: AppContext, dataset_id: int, files: list[tuple[str, bytes]]) -> UploadOut:
    added, skipped, rows = 0, [], []
    for name, data in files:
        try:
            img = open_image_bytes(data, name, c.settings.max_image_pixels)
        except ImageError as e:
            skipped.append(str(e))
            continue
        key = c.blobs.put(data)  # blob first, then the row that points at it
        rows.append(
            DatasetImage(dataset_id=dataset_id, filename=name[:300], sha256=key, width=img.width, height=img.height)
        )
        added += 1
    with c.sessions() as s, s.begin():
        s.add_all(rows)
    with c.sessions() as s:
        total = s.scalar(select(func.count()).select_from(DatasetImage).where(DatasetImage.dataset_id == dataset_id))
    return UploadOut(added=added, skipped=skipped[:50], images=total or 0)


@router.post("/{dataset_id}/images", response_model=UploadOut, responses={**NOT_FOUND, 400: {}, 413: {}})
async def upload_images(dataset_id: int, files: list[UploadFile], _=Depends(engineer), c=Depends(ctx)):
    """Good images as multipart files; a zip file is unpacked. Unreadable images are skipped and listed."""
    with c.sessions() as s:
        if s.get(Dataset, dataset_id) is None:
            raise HTTPException(404, f"no dataset {dataset_id}")
    members: list[tuple[str, bytes]] = []
    for f in files:
        data = await f.read()
        members += _members(f.filename or "upload", data)
    if not members:
        raise HTTPException(400, "no image files in the upload")
    return await run_in_threadpool(_store, c, dataset_id, members)
