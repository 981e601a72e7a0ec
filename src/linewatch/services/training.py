"""Training a vision model version as a background job (job kind "train"): the dataset's good images from the
blob store, the detector's parameters from the request, evaluation on a test dataset, ONNX export."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from linewatch.errors import LinewatchError
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict, NotFound
from linewatch.services.jobs import active_twin
from linewatch.store.tables import Dataset, DatasetImage, Job, ModelVersion
from linewatch.vision.cpu import resolve_search
from linewatch.vision.methods import METHODS, check_across


def _fetch(ctx: AppContext, images: list[DatasetImage], folder: Path) -> list[Path]:
    """The dataset's images as files in a temporary folder (the model code reads paths)."""
    paths = []
    for i, im in enumerate(images):
        p = folder / f"{i:06d}_{Path(im.filename).name}"
        p.write_bytes(ctx.blobs.get(im.sha256))
        paths.append(p)
    return paths


def _fetch_masks(ctx: AppContext, images: list[DatasetImage], folder: Path) -> list[Path | None]:
    """The images' ground-truth masks as files (None where an image has none)."""
    out: list[Path | None] = []
    for i, im in enumerate(images):
        if im.mask_sha256 is None:
            out.append(None)
            continue
        p = folder / f"{i:06d}_mask.png"
        p.write_bytes(ctx.blobs.get(im.mask_sha256))
        out.append(p)
    return out


def _dataset_images(ctx: AppContext, dataset_id: int, good_only: bool) -> tuple[str, list[DatasetImage]]:
    with ctx.sessions() as s:
        dataset = s.get(Dataset, dataset_id)
        if dataset is None:
            raise LinewatchError(f"dataset {dataset_id} no longer exists")
        q = select(DatasetImage).where(DatasetImage.dataset_id == dataset_id)
        if good_only:
            q = q.where(DatasetImage.label == "good")
        return dataset.name, list(s.scalars(q.order_by(DatasetImage.id)).all())


class _RecordScores:
    """The detector as ``evaluate`` sees it, keeping each test image's raw score (for the dashboard's score
    histogram and ROC curve) as evaluation goes: the images are scored once."""

    def __init__(self, detector):
        self._detector = detector
        self.scores: list[float] = []

    def __getattr__(self, name):
        return getattr(self._detector, name)

    def raw_scores(self, images, progress=None):
        for item in self._detector.raw_scores(images, progress):
            self.scores.append(float(item[0]))
            yield item


def test_scores(samples, scores: list[float]) -> list[dict]:
    """Per test image: its label (good or a defect type) and raw score, at most a few thousand (bounded JSON)."""
    rows = [{"label": x.label, "score": round(sc, 6)} for x, sc in zip(samples, scores, strict=True)]
    return rows[:MAX_TEST_SCORES]


MAX_TEST_SCORES = 5000


def _detector_params(job_params: dict) -> dict:
    """The detector's parameters of a training job (jobs stored before they were nested carry backbone and
    image size beside the dataset)."""
    if "params" in job_params:
        return dict(job_params["params"])
    return {k: job_params[k] for k in ("backbone", "image_size") if k in job_params}


def run_training(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Train a model version from a dataset's good images; the version becomes ready with an ONNX export, and
    with the metrics of an evaluation on ``test_dataset_id``'s labelled images when one is given."""
    from linewatch.vision.datasets import Dataset as ImageSet
    from linewatch.vision.datasets import Sample
    from linewatch.vision.evaluation import evaluate
    from linewatch.vision.export import export_onnx
    from linewatch.vision.methodchoice import MethodChoice
    from linewatch.vision.saving import create_detector, save

    name, images = _dataset_images(ctx, params["dataset_id"], good_only=True)
    with ctx.sessions() as s:
        model_id = s.scalar(select(ModelVersion.id).where(ModelVersion.job_id == job_id))
    if len(images) < 5:
        raise LinewatchError(f"dataset {name!r} has {len(images)} good images; training needs at least 5")
    metrics = None
    with tempfile.TemporaryDirectory(prefix="linewatch-train-") as tmp:
        detector_params = _detector_params(params)
        if params.get("area_sha256"):  # the dataset's inspection area when the training was queued
            area = Path(tmp) / "inspect_area.png"
            area.write_bytes(ctx.blobs.get(params["area_sha256"]))
            detector_params["inspect_area"] = str(area)
        det = create_detector(params["method"], **detector_params)
        det.fit(_fetch(ctx, images, Path(tmp)), progress=progress)
        scorer = det.chosen if isinstance(det, MethodChoice) else det  # a method choice: the candidate it kept
        if params.get("search") and "search" in scorer.params_:  # ``auto`` resolved by the service (start_training)
            det.train_info_["search"] = dict(params["search"])
        if params.get("test_dataset_id"):
            test_name, test_images = _dataset_images(ctx, params["test_dataset_id"], good_only=False)
            folder = Path(tmp) / "test"
            folder.mkdir()
            paths = _fetch(ctx, test_images, folder)
            masks = _fetch_masks(ctx, test_images, folder)
            if not all(m for m, im in zip(masks, test_images, strict=True) if im.label != "good"):
                masks = [None] * len(masks)  # pixel metrics need every defective image's mask
            samples = [Sample(p, im.label, m) for p, m, im in zip(paths, masks, test_images, strict=True)]
            if not any(x.is_anomalous for x in samples) or all(x.is_anomalous for x in samples):
                raise LinewatchError(f"test dataset {test_name!r} needs both good and defective images to evaluate")
            recorder = _RecordScores(det)
            metrics = evaluate(recorder, ImageSet(folder, "folder", [], samples), progress=progress)
            metrics["test_dataset_id"] = params["test_dataset_id"]
            if len(recorder.scores) == len(samples):
                metrics["test_scores"] = test_scores(samples, recorder.scores)
    final = ctx.settings.models_dir / str(model_id)
    save(det, final, metrics)
    progress("export", 0, 1)
    export_onnx(final)
    cal = det.calibration_
    with ctx.sessions() as s, s.begin():
        mv = s.get(ModelVersion, model_id)
        mv.status, mv.path = "ready", str(final.resolve())
        mv.threshold = cal.image_threshold if cal else None
        mv.metrics = {**(metrics or {}), "training": det.train_info_ | {"skipped": len(det.skipped_)}}
    return {"model_id": model_id, "train_images": det.train_info_["train_images"]}


def remove_model_files(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def _default_name(dataset: str, job_id: int) -> str:
    """The dataset's name and `` #<job id>``, the name shortened to fit a model name (200 characters)."""
    suffix = f" #{job_id}"
    return dataset[: 200 - len(suffix)] + suffix


def start_training(
    ctx: AppContext,
    session: Session,
    user_id: int | None,
    dataset_id: int,
    test_dataset_id: int | None,
    name: str | None,
    method: str,
    params: dict,
) -> Job:
    """Queue a training job and its model version ("training" until the job ends). The same training (dataset,
    test set, name, method and parameters) while one is queued or running is refused: it would make the same
    model twice."""
    resolved = {**METHODS[method].params.defaults(), **params}
    check_across(METHODS[method].params.validate(resolved))  # a mistake between parameters: a 400, not a failed job
    search = None
    if resolved.get("search") == "auto":
        # the bank search that suits the CPU scoring the model, this service's, not that of a worker on another
        # machine (a cluster's training node): decided here, and the manifest says so
        chosen, why = resolve_search("auto")
        params = {**params, "search": chosen}
        search = {"asked": "auto", "chosen": chosen, "reason": f"the service's CPU: {why}"}
    job_params = {
        "dataset_id": dataset_id,
        "test_dataset_id": test_dataset_id,
        "name": name,
        "method": method,
        "params": params,
    }
    if search is not None:
        job_params["search"] = search
    with session.begin():
        ds = session.get(Dataset, dataset_id)
        if ds is None:
            raise NotFound(f"no dataset {dataset_id}")
        if test_dataset_id is not None and session.get(Dataset, test_dataset_id) is None:
            raise NotFound(f"no test dataset {test_dataset_id}")
        if ds.area_sha256 is not None:  # the area as it is now: the job trains with it even if it changes meanwhile
            job_params["area_sha256"] = ds.area_sha256
        same = active_twin(session, "train", job_params)
        if same is not None:
            raise Conflict(f"the same training is already {same.status} as job #{same.id}: follow it on the Train page")
        job = Job(kind="train", params=job_params, created_by=user_id, message="queued")
        session.add(job)
        session.flush()
        session.add(
            ModelVersion(
                name=name or _default_name(ds.name, job.id),
                method=method,
                backbone=resolved["backbone"],
                image_size=resolved["image_size"],
                dataset_id=ds.id,
                job_id=job.id,
                created_by=user_id,
            )
        )
    ctx.jobs.submit(job.id)
    return job
