"""Datasets of good images for training: create, upload (many files or a zip), list, delete."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from linewatch.api.deps import DB, Ctx, Engineer, Id, Viewer
from linewatch.api.schemas import DatasetIn, DatasetOut, UploadOut, errors
from linewatch.errors import LinewatchError
from linewatch.services import datasets
from linewatch.services.errors import NotFound

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404, e404="no such dataset")


@router.post("", response_model=DatasetOut, status_code=201)
def create_dataset(body: DatasetIn, who: Engineer, session: DB):
    return datasets.create(session, body.name, who.user_id)


@router.get("", response_model=list[DatasetOut])
def list_datasets(_: Viewer, session: DB):
    return datasets.list_all(session)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=NOT_FOUND)
def get_dataset(dataset_id: Id, _: Viewer, session: DB):
    return datasets.get(session, dataset_id)


@router.delete("/{dataset_id}", status_code=204, responses=NOT_FOUND)
def delete_dataset(dataset_id: Id, who: Engineer, session: DB):
    datasets.remove(session, dataset_id, who)


@router.post("/{dataset_id}/images", response_model=UploadOut, responses={**NOT_FOUND, **errors(400, 413)})
async def upload_images(
    dataset_id: Id,
    _: Engineer,
    c: Ctx,
    files: list[UploadFile] = File(min_length=1, description="images, or zip files of images"),
    label: str = Form(
        "good",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="label of plain image files: good, or a defect type (zip members take their folder's name)",
    ),
):
    """Images as multipart files; a zip file is unpacked (an MVTec-style zip keeps each image's folder name as its
    label, so a test set of good and defective images can be uploaded at once, and its ``ground_truth/<type>/
    <stem>_mask.png`` masks go with their images: evaluation then reports pixel AUROC and AUPRO too). Unreadable
    images are skipped and listed. Training uses the images labelled good; a labelled set can evaluate a model."""
    if not await run_in_threadpool(datasets.exists, c, dataset_id):  # off the event loop: the database may hang
        raise NotFound(f"no dataset {dataset_id}")
    members: list[tuple[str, str, bytes]] = []
    masks: dict[tuple[str, str], bytes] = {}
    for f in files:
        data = await f.read()
        members += datasets.unpack(f.filename or "upload", data, label, masks)
    if not members:
        raise LinewatchError("no image files in the upload")
    return await run_in_threadpool(datasets.store_images, c, dataset_id, members, masks)


PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}, "description": "a PNG"}


@router.put(
    "/{dataset_id}/area", response_model=DatasetOut, responses={**NOT_FOUND, **errors(400, 413, e400="not a mask")}
)
async def set_area(
    dataset_id: Id,
    who: Engineer,
    c: Ctx,
    file: UploadFile = File(description="the mask: an image the size of the photos, white inspected, black ignored"),
):
    """The dataset's inspection area: the part of every photo the models trained on it from now on inspect (what
    changes outside it, such as a printed date code, a label or the tray, is neither scored nor flagged). Drawn on one
    of its photos, so its width / height must be the good images' (400 otherwise, and for a mask that inspects
    nothing). Models trained before keep the area they were trained with."""
    data = await file.read()
    return await run_in_threadpool(datasets.set_area, c, dataset_id, file.filename or "area.png", data, who)


@router.get("/{dataset_id}/area", response_class=Response, responses={200: PNG, **errors(404)})
async def get_area(dataset_id: Id, _: Viewer, c: Ctx):
    """The inspection area's mask as a PNG (white inspected, black ignored); 404 when the dataset has none."""
    png = await run_in_threadpool(datasets.area_bytes, c, dataset_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.delete("/{dataset_id}/area", response_model=DatasetOut, responses=NOT_FOUND)
def clear_area(dataset_id: Id, who: Engineer, session: DB):
    """Models trained on the dataset from now on inspect the whole photo."""
    return datasets.clear_area(session, dataset_id, who)
