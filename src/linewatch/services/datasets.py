"""Datasets of labelled images for training and evaluation: created, filled from uploads (files or zips, with
MVTec-style ground-truth masks), listed, deleted. Images go to the blob store before the rows that point at them."""

from __future__ import annotations

import io
import re
import statistics
import zipfile
from pathlib import PurePosixPath

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from linewatch.errors import ImageError, LinewatchError
from linewatch.services import audit
from linewatch.services.accounts import Principal
from linewatch.services.context import AppContext
from linewatch.services.errors import NotFound, TooLarge
from linewatch.services.inspecting import clean_filename
from linewatch.store.tables import Dataset, DatasetImage
from linewatch.vision.area import area_from_image, area_png, check_aspect, inspected_share
from linewatch.vision.images import image_suffixes, is_hidden, open_image_bytes

MAX_ZIP_MEMBERS = 20_000
MAX_MEMBER_BYTES = 100 * 1024 * 1024
MAX_UNZIPPED_BYTES = 1024**3  # what the images of one zip may unpack to (zip bombs)


def summary(session: Session, d: Dataset) -> dict:
    n = session.scalar(select(func.count()).select_from(DatasetImage).where(DatasetImage.dataset_id == d.id))
    out = {"id": d.id, "name": d.name, "images": n or 0, "created_at": d.created_at}
    return {**out, "area_inspected": d.area_inspected}


def create(session: Session, name: str, user_id: int | None) -> dict:
    with session.begin():
        d = Dataset(name=name, created_by=user_id)
        session.add(d)
        session.flush()
        audit.record(session, "dataset.create", actor_id=user_id, target=f"dataset {d.id} {name}")
    return summary(session, d)


def list_all(session: Session) -> list[dict]:
    return [summary(session, d) for d in session.scalars(select(Dataset).order_by(Dataset.id.desc()))]


def get(session: Session, dataset_id: int) -> dict:
    d = session.get(Dataset, dataset_id)
    if d is None:
        raise NotFound(f"no dataset {dataset_id}")
    return summary(session, d)


def remove(session: Session, dataset_id: int, who: Principal | None = None) -> None:
    with session.begin():
        d = session.get(Dataset, dataset_id)
        if d is None:
            raise NotFound(f"no dataset {dataset_id}")
        session.execute(delete(DatasetImage).where(DatasetImage.dataset_id == dataset_id))
        session.delete(d)
        audit.record(session, "dataset.delete", who, target=f"dataset {dataset_id} {d.name}")


def exists(c: AppContext, dataset_id: int) -> bool:
    with c.sessions() as s:
        return s.get(Dataset, dataset_id) is not None


def _is_mask(path: PurePosixPath) -> bool:
    return "ground_truth" in path.parts or path.stem.endswith("_mask")


def _zip_label(path: PurePosixPath, default: str) -> str:
    """The label of a zip member: its folder's name (``good``, or a defect type as in MVTec's ``test/<type>``;
    for a mask ``ground_truth/<type>/<stem>_mask.png``, the type)."""
    # as a label given with the upload: letters, digits, . _ - (anything else becomes _), never dots alone
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", clean_filename(path.parent.name, default) or "")[:100]
    return label if label.strip(".") else default


def _mask_key(label: str, filename: str) -> tuple[str, str]:
    """What pairs a defective image with its ground-truth mask: its label and file stem (MVTec's layout)."""
    return label, PurePosixPath(filename).stem.removesuffix("_mask")


def unpack(upload_name: str, data: bytes, label: str, masks: dict | None = None) -> list[tuple[str, str, bytes]]:
    """(file name, label, bytes) of an uploaded image, or of each image in an uploaded zip; the zip's
    ground-truth masks go into ``masks`` by ``_mask_key``."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return [(upload_name, label, data)]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            if len(infos) > MAX_ZIP_MEMBERS:
                raise TooLarge(f"zip holds {len(infos)} files; at most {MAX_ZIP_MEMBERS}")
            wanted = []
            suffixes = image_suffixes()
            for info in infos:
                name = PurePosixPath(info.filename)
                if name.suffix.lower() not in suffixes or is_hidden(name.parts):
                    continue
                if info.file_size > MAX_MEMBER_BYTES:
                    raise TooLarge(f"{clean_filename(info.filename)} in the zip is over 100 MB")
                wanted.append((name.name, _zip_label(name, label), info, _is_mask(name)))
            unzipped = sum(info.file_size for _, _, info, _ in wanted)
            if unzipped > MAX_UNZIPPED_BYTES:
                raise TooLarge(f"{clean_filename(upload_name)}: the images unpack to over 1 GiB")
            # Reading stops at each member's declared size (a lying header fails its CRC check).
            out = []
            for name, lab, info, is_mask in wanted:
                if not is_mask:
                    out.append((name, lab, z.read(info)))
                elif masks is not None:
                    masks[_mask_key(lab, name)] = z.read(info)
    except TooLarge:
        raise
    except Exception as e:  # BadZipFile, zlib.error, an encrypted member, an unsupported compression method...
        raise LinewatchError(f"{clean_filename(upload_name)}: corrupt or unsupported zip ({e})") from None
    return out


def store_images(
    c: AppContext, dataset_id: int, files: list[tuple[str, str, bytes]], masks: dict | None = None
) -> dict:
    added, skipped, rows, with_mask = 0, [], [], 0
    masks = masks or {}
    for raw_name, label, data in files:
        name = clean_filename(raw_name, "upload")
        try:
            img = open_image_bytes(data, name, c.settings.max_image_pixels)
        except ImageError as e:
            skipped.append(str(e))
            continue
        mask_key = None
        mask = masks.get(_mask_key(label, raw_name)) if label != "good" else None
        if mask is not None:
            try:
                m = open_image_bytes(mask, f"mask of {name}", c.settings.max_image_pixels)
                if m.size != img.size:
                    raise ImageError(f"mask of {name}: {m.width}x{m.height}, the image is {img.width}x{img.height}")
                mask_key = c.blobs.put(mask)
                with_mask += 1
            except ImageError as e:
                skipped.append(str(e))
        key = c.blobs.put(data)  # blobs first, then the row that points at them
        rows.append(
            DatasetImage(
                dataset_id=dataset_id,
                filename=name,
                sha256=key,
                width=img.width,
                height=img.height,
                label=label,
                mask_sha256=mask_key,
            )
        )
        added += 1
    with c.sessions() as s, s.begin():
        s.add_all(rows)
    with c.sessions() as s:
        total = s.scalar(select(func.count()).select_from(DatasetImage).where(DatasetImage.dataset_id == dataset_id))
    return {"added": added, "skipped": skipped[:50], "images": total or 0, "masks": with_mask}


def good_aspect(session: Session, dataset_id: int) -> float | None:
    """The median width / height of a dataset's good images (None without any), from their stored sizes."""
    rows = session.execute(
        select(DatasetImage.width, DatasetImage.height).where(
            DatasetImage.dataset_id == dataset_id, DatasetImage.label == "good"
        )
    ).all()
    ratios = sorted(w / h for w, h in rows if w and h)
    return float(statistics.median(ratios)) if ratios else None


def set_area(c: AppContext, dataset_id: int, name: str, data: bytes, who: Principal | None = None) -> dict:
    """Give the dataset an inspection area (``linewatch.vision.area``) from an uploaded mask image: white inspected,
    black ignored, drawn on one of its photos (the same width / height as its good images). Models trained on it
    from now on inspect that area only; the ones trained before keep theirs."""
    name = clean_filename(name, "area.png")
    area = area_from_image(open_image_bytes(data, name, c.settings.max_image_pixels), f"inspection area {name}")
    with c.sessions() as s:
        if s.get(Dataset, dataset_id) is None:
            raise NotFound(f"no dataset {dataset_id}")
        check_aspect(area, good_aspect(s, dataset_id), name)
    key = c.blobs.put(area_png(area))  # the blob first, then the row that points at it
    share = inspected_share(area)
    with c.sessions() as s, s.begin():
        d = s.get(Dataset, dataset_id)
        if d is None:
            raise NotFound(f"no dataset {dataset_id}")
        d.area_sha256, d.area_inspected = key, share
        audit.record(s, "dataset.area", who, target=f"dataset {dataset_id} {d.name}", inspected=share)
        return summary(s, d)


def area_bytes(c: AppContext, dataset_id: int) -> bytes:
    """The PNG of the dataset's inspection area; NotFound when it has none."""
    with c.sessions() as s:
        d = s.get(Dataset, dataset_id)
        if d is None:
            raise NotFound(f"no dataset {dataset_id}")
        key = d.area_sha256
    if key is None:
        raise NotFound(f"dataset {dataset_id} has no inspection area: its models inspect the whole photo")
    return c.blobs.get(key)


def clear_area(session: Session, dataset_id: int, who: Principal | None = None) -> dict:
    """The whole photo inspected again by models trained on the dataset from now on."""
    with session.begin():
        d = session.get(Dataset, dataset_id)
        if d is None:
            raise NotFound(f"no dataset {dataset_id}")
        d.area_sha256 = d.area_inspected = None
        audit.record(session, "dataset.area_clear", who, target=f"dataset {dataset_id} {d.name}")
    return summary(session, d)
