"""Training jobs: start, follow, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from linewatch.api.auth import Principal
from linewatch.api.deps import Id, ctx, db, engineer, viewer
from linewatch.api.schemas import JobOut, TrainIn, errors
from linewatch.store.tables import Dataset, Job, ModelVersion

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404)


def _default_name(dataset: str, job_id: int) -> str:
    """The dataset's name and `` #<job id>``, the name shortened to fit a model name (200 characters)."""
    suffix = f" #{job_id}"
    return dataset[: 200 - len(suffix)] + suffix


@router.post(
    "/train",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 409, e404="no such dataset", e409="the same training is already queued or running"),
)
def start_training(body: TrainIn, who: Principal = Depends(engineer), session: Session = Depends(db), c=Depends(ctx)):
    """Queue training of a new model version on a dataset's good images; follow it with GET /jobs/{id}. The same
    training (dataset, test set, method, backbone, size, name) while one is queued or running is refused (409):
    it would only make the same model twice."""
    with session.begin():
        ds = session.get(Dataset, body.dataset_id)
        if ds is None:
            raise HTTPException(404, f"no dataset {body.dataset_id}")
        if body.test_dataset_id is not None and session.get(Dataset, body.test_dataset_id) is None:
            raise HTTPException(404, f"no test dataset {body.test_dataset_id}")
        params = body.model_dump()
        active = session.scalars(
            select(Job).where(Job.kind == "train", Job.status.in_(("queued", "running"))).order_by(Job.id)
        ).all()
        same = next((j for j in active if j.params == params), None)
        if same is not None:
            raise HTTPException(
                409, f"the same training is already {same.status} as job #{same.id}: follow it on the Train page"
            )
        job = Job(kind="train", params=params, created_by=who.user_id, message="queued")
        session.add(job)
        session.flush()
        session.add(
            ModelVersion(
                name=body.name or _default_name(ds.name, job.id),
                method=body.method,
                backbone=body.backbone,
                image_size=body.image_size,
                dataset_id=ds.id,
                job_id=job.id,
                created_by=who.user_id,
            )
        )
    c.jobs.submit(job.id)
    return job


@router.get("", response_model=list[JobOut])
def list_jobs(
    _=Depends(viewer),
    session: Session = Depends(db),
    limit: int = Query(50, ge=1, le=500),
    active: bool = Query(False, description="only jobs queued or running"),
):
    """Newest first."""
    q = select(Job).order_by(Job.id.desc()).limit(limit)
    if active:
        q = q.where(Job.status.in_(("queued", "running")))
    return session.scalars(q).all()


# `:int`: only digits match, so /jobs/train is not taken for a job id (GET /jobs/train is 405, not 422).
@router.get("/{job_id:int}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: Id, _=Depends(viewer), session: Session = Depends(db)):
    job = session.get(Job, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.post("/{job_id:int}/cancel", response_model=JobOut, responses=errors(404, 409, e409="the job has finished"))
def cancel_job(job_id: Id, _=Depends(engineer), session: Session = Depends(db)):
    with session.begin():
        job = session.get(Job, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        if job.status not in ("queued", "running"):
            raise HTTPException(409, f"job {job_id} is already {job.status}")
        job.cancel_requested = True
        job.message = "cancelling"
    return job
