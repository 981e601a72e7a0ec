"""Training jobs: start, follow, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Query

from linewatch.api.deps import DB, Ctx, Engineer, Id, Viewer
from linewatch.api.schemas import JobOut, TrainIn, errors, training_params
from linewatch.services import jobs, training

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=errors(400, 401, 403, 422))
NOT_FOUND = errors(404)


@router.post(
    "/train",
    response_model=JobOut,
    status_code=202,
    responses=errors(404, 409, e404="no such dataset", e409="the same training is already queued or running"),
)
def start_training(body: TrainIn, who: Engineer, session: DB, c: Ctx):
    """Queue training of a new model version on a dataset's good images; follow it with GET /jobs/{id}. The same
    training (dataset, test set, name, method and parameters) while one is queued or running is refused (409):
    it would only make the same model twice."""
    return training.start_training(
        c, session, who.user_id, body.dataset_id, body.test_dataset_id, body.name, body.method, training_params(body)
    )


@router.get("", response_model=list[JobOut])
def list_jobs(
    _: Viewer,
    session: DB,
    limit: int = Query(50, ge=1, le=500),
    active: bool = Query(False, description="only jobs queued or running"),
):
    """Newest first."""
    return jobs.list_jobs(session, limit, active)


# `:int`: only digits match, so /jobs/train is not taken for a job id (GET /jobs/train is 405, not 422).
@router.get("/{job_id:int}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: Id, _: Viewer, session: DB):
    return jobs.get_job(session, job_id)


@router.post("/{job_id:int}/cancel", response_model=JobOut, responses=errors(404, 409, e409="the job has finished"))
def cancel_job(job_id: Id, _: Engineer, session: DB):
    return jobs.cancel_job(session, job_id)
