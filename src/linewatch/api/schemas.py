"""Request and response bodies of the API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "engineer", "operator", "viewer"]
Verdict = Literal["good", "anomalous"]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime
    role: Role


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=1000)
    role: Role


class UserOut(Orm):
    id: int
    name: str
    role: Role
    active: bool
    created_at: dt.datetime


class MeOut(BaseModel):
    user_id: int
    name: str
    role: Role
    via: str


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role


class ApiKeyOut(Orm):
    id: int
    name: str
    prefix: str
    role: Role
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; only its hash is stored")


class StationIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")


class StationOut(Orm):
    id: int
    name: str
    active_model_id: int | None
    created_at: dt.datetime


class ActivateIn(BaseModel):
    station: str = Field(min_length=1, max_length=100)


class DatasetIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class DatasetOut(BaseModel):
    id: int
    name: str
    images: int
    created_at: dt.datetime


class UploadOut(BaseModel):
    added: int
    skipped: list[str]
    images: int


class TrainIn(BaseModel):
    dataset_id: int
    name: str | None = Field(None, max_length=200)
    method: Literal["patchcore", "padim"] = "patchcore"
    backbone: str = Field("efficientnet_lite0", max_length=100)
    image_size: int = Field(256, ge=32, le=1024)


class JobOut(Orm):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    params: dict
    result: dict | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class ModelOut(Orm):
    id: int
    name: str
    method: str
    backbone: str
    image_size: int
    status: str
    threshold: float | None
    metrics: dict | None
    dataset_id: int | None
    job_id: int | None
    created_by: int | None
    created_at: dt.datetime
    stations: list[str] = []


class RegionOut(BaseModel):
    x: int
    y: int
    width: int
    height: int
    area: int
    max_score: float
    mean_score: float


class InspectionOut(Orm):
    id: int
    station: str
    model_id: int
    filename: str | None
    image_sha256: str
    image_phash: str
    width: int
    height: int
    score: float
    normalized_score: float
    verdict: Verdict
    regions: list[RegionOut]
    latency_ms: float
    reviewed: bool
    created_at: dt.datetime
    image_url: str
    heatmap_url: str


class InspectionPage(BaseModel):
    items: list[InspectionOut]
    next_cursor: int | None


class ReviewIn(BaseModel):
    verdict: Verdict
    defect_type: str | None = Field(None, max_length=100)
    note: str = Field("", max_length=5000)


class ReviewOut(Orm):
    id: int
    inspection_id: int
    reviewer_id: int | None
    verdict: Verdict
    defect_type: str | None
    note: str
    created_at: dt.datetime
