"""Database tables (SQLAlchemy 2). Alembic migrations in ``migrations/`` create and change them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(t: dt.datetime) -> dt.datetime:
    """A stored time with its zone: SQLite gives the UTC times it stored back without one."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}


ROLES = ("admin", "engineer", "operator", "viewer")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Token(Base):
    """A login session: the token is shown once, only its sha256 is stored."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[dt.datetime] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class ApiKey(Base):
    """A machine credential (camera, script); shown once, stored as sha256; acts with its own role, never above
    its owner's current one."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # the stations it may inspect at (names); None: every station
    stations: Mapped[list | None] = mapped_column(JSON, nullable=True)


class Station(Base):
    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    active_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Activation(Base):
    """History of which model a station used, for roll back."""

    __tablename__ = "activations"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    activated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    # the inspection area of models trained on it (``linewatch.vision.area``): its mask's PNG blob and the share of
    # each photo it inspects; None: the whole photo
    area_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    area_inspected: Mapped[float | None] = mapped_column(Float, nullable=True)


class DatasetImage(Base):
    __tablename__ = "dataset_images"
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(100), default="good")
    mask_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # ground truth of a defective one
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(30))
    backbone: Mapped[str] = mapped_column(String(100))
    image_size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="training")  # training, calibrating, ready, failed
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued running succeeded failed cancelled
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class Inspection(Base):
    __tablename__ = "inspections"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    image_phash: Mapped[str] = mapped_column(String(16))
    # pixels of the image itself (search/repeats.py): what tells a repeated photo from another photo of the same part
    image_fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    heatmap_sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(300), nullable=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    normalized_score: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(20))
    regions: Mapped[list] = mapped_column(JSON, default=list)
    latency_ms: Mapped[float] = mapped_column(Float)
    # the mean luminance (0 to 1) of the model's input (vision.appearance), for the drift watch; None before 0014
    brightness: Mapped[float | None] = mapped_column(Float, nullable=True, deferred=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    # the latest review's verdict (None until reviewed): the verdict that counts once a person has looked
    review_verdict: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # the latest review's defect type (None until a review gives one, or when it overturned to good)
    defect_type: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    # an upload repeating a recent one at the same station: the earlier inspection, and "exact" (same bytes) or
    # "near" (the same photo re-encoded or re-cropped); line statistics count only the first
    duplicate_of: Mapped[int | None] = mapped_column(
        ForeignKey("inspections.id", ondelete="SET NULL"), nullable=True, index=True
    )
    duplicate_kind: Mapped[str | None] = mapped_column(String(10), nullable=True)

    __table_args__ = (
        Index("ix_inspections_station_time", "station_id", "id"),
        Index("ix_inspections_verdict", "verdict"),
    )


class StationDriftChange(Base):
    """A change of a station's drift level (``services.drift``): the watch's history, one row each time the level
    its active model's scores show moves (unknown, ok, watch, drift), with the figures that moved it."""

    __tablename__ = "station_drift"
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"), nullable=True)
    level: Mapped[str] = mapped_column(String(10))
    previous_level: Mapped[str | None] = mapped_column(String(10), nullable=True)
    recent: Mapped[int] = mapped_column(Integer)
    shift_auroc: Mapped[float | None] = mapped_column(Float, nullable=True)
    false_alarm_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)
    # the station's change this one follows (0 for its first): unique, so that two service processes that saw the
    # same change store it once (the second's insert fails)
    follows_id: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_station_drift_station", "station_id", "id"),
        Index("ux_station_drift_follows", "station_id", "follows_id", unique=True),
    )


class InspectionVectors(Base):
    """Search vectors of an inspection, from its scoring pass (float32 bytes, L2-normalised): the source the
    search index is built from. ``space`` names what they can be compared with (method, backbone, size)."""

    __tablename__ = "inspection_vectors"
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), primary_key=True)
    space: Mapped[str] = mapped_column(String(200), index=True)
    image: Mapped[bytes] = mapped_column(LargeBinary)  # (C,) the whole part
    defects: Mapped[bytes] = mapped_column(LargeBinary)  # (R, E): one per region, or the anomaly peak if none
    defect_dim: Mapped[int] = mapped_column(Integer)
    from_regions: Mapped[bool] = mapped_column(Boolean)  # False: the one defect vector is the anomaly peak


class InspectRequest(Base):
    """An inspect request sent with an ``Idempotency-Key``: the inspections it stored, so that the same request
    sent again (a camera retrying after a timeout) answers them instead of storing the images twice."""

    __tablename__ = "inspect_requests"
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    inspection_ids: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=now, index=True)


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    verdict: Mapped[str] = mapped_column(String(20))
    defect_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


# -- machines and their sensors (the line service) ------------------------------------------------------------------
class Line(Base):
    __tablename__ = "lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Machine(Base):
    __tablename__ = "machines"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id"), index=True)
    type: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    stations: Mapped[list] = mapped_column(JSON, default=list)  # names of the inspection stations it feeds
    active_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("machine_models.id", use_alter=True, name="fk_machines_active_model"), nullable=True
    )
    # the maintenance model (remaining useful life or failure risk) whose predictions the service keeps
    maintenance_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("machine_models.id", use_alter=True, name="fk_machines_maintenance_model"), nullable=True
    )
    life_start: Mapped[dt.datetime | None] = mapped_column(nullable=True)  # the last maintenance: cycles count from it
    health: Mapped[float | None] = mapped_column(Float, nullable=True)  # 0..1, from the active model's scores
    health_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_reading_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


SENSOR_KINDS = ("sensor", "score")  # "score": the machine's anomaly score, stored as a series like a sensor's


class Sensor(Base):
    __tablename__ = "sensors"
    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10), default="sensor")
    unit: Mapped[str] = mapped_column(String(30), default="")
    low: Mapped[float | None] = mapped_column(Float, nullable=True)  # expected range
    high: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)

    __table_args__ = (Index("ux_sensors_machine_name", "machine_id", "name", unique=True),)


class Reading(Base):
    """One value of one sensor: time in integer milliseconds since the epoch (UTC). The primary key makes a
    reading delivered twice (MQTT QoS 1 redelivery, a retried POST) stored once. No foreign key: a check per row
    costs ingest throughput, and sensors are deleted with their readings by the service."""

    __tablename__ = "readings"
    sensor_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    __table_args__ = {"sqlite_with_rowid": False}


class _Rollup:
    """A roll-up's columns: per sensor and bucket (ms, the bucket's start), count, sum, min and max."""

    sensor_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    vsum: Mapped[float] = mapped_column(Float)
    vmin: Mapped[float] = mapped_column(Float)
    vmax: Mapped[float] = mapped_column(Float)
    __table_args__ = {"sqlite_with_rowid": False}


class ReadingMinute(_Rollup, Base):
    """Per sensor and minute: count, sum, min and max of its readings (``bucket`` in ms, the minute's start);
    kept up to date as readings are stored, and kept after the raw readings are pruned."""

    __tablename__ = "readings_1m"


class ReadingTenMinutes(_Rollup, Base):
    """As ``ReadingMinute``, per ten minutes: a week's chart reads 1,008 rows per sensor."""

    __tablename__ = "readings_10m"


class ReadingHour(_Rollup, Base):
    """As ``ReadingMinute``, per hour: a month's chart reads 720 rows per sensor."""

    __tablename__ = "readings_1h"


class DeadLetter(Base):
    """Readings refused at ingest (not JSON, unknown machine or sensor, wrong types, NaN, far future), with why."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20))  # mqtt, http, import
    topic: Mapped[str] = mapped_column(String(300), default="")
    reason: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=1)  # readings refused for this reason in the message
    payload: Mapped[str] = mapped_column(Text, default="")  # the message, cut at 4 KB
    created_at: Mapped[dt.datetime] = mapped_column(default=now, index=True)


class MachineModel(Base):
    """A version of a machine's sensor model (a streaming detector warmed on its readings)."""

    __tablename__ = "machine_models"
    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20), default="anomaly")  # anomaly, rul, failure
    method: Mapped[str] = mapped_column(String(30))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    sensors: Mapped[list] = mapped_column(JSON, default=list)  # sensor names, in the model's column order
    status: Mapped[str] = mapped_column(String(20), default="training")  # training, calibrating, ready, failed
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    source: Mapped[dict] = mapped_column(JSON, default=dict)  # the readings' time range, or the uploaded file
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class MaintenancePrediction(Base):
    """A machine's remaining useful life (with its interval) or failure probability at the end of one cycle of
    its readings, by its maintenance model: the history the dashboard charts."""

    __tablename__ = "maintenance_predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("machine_models.id", ondelete="SET NULL"), nullable=True)
    time: Mapped[dt.datetime] = mapped_column()  # the cycle's end
    cycle: Mapped[int] = mapped_column(Integer)  # cycles since the machine's life start, from 1
    rul: Mapped[float | None] = mapped_column(Float, nullable=True)  # in cycles
    rul_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    rul_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    failure_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)

    __table_args__ = (
        Index("ix_maintenance_predictions_machine_time", "machine_id", "time"),
        # one prediction of a cycle by a model: two service processes predicting the same cycles store them once
        Index("ux_maintenance_predictions_cycle", "machine_id", "model_id", "time", "cycle", unique=True),
    )


class MaintenanceEvent(Base):
    """Maintenance done on a machine: a new life starts at ``time``. With ``failed_at`` the machine had failed
    then, so the life that ends here ran to failure: the stored readings of such lives train a remaining-useful-life
    model (``maintenance`` then is the repair). Without it the life ended in preventive maintenance."""

    __tablename__ = "maintenance_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    time: Mapped[dt.datetime] = mapped_column()  # when the maintenance was done: the next life's start
    failed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)  # when it failed (a run to failure)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)

    __table_args__ = (Index("ix_maintenance_events_machine_time", "machine_id", "time"),)


class MachineActivation(Base):
    __tablename__ = "machine_activations"
    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("machine_models.id", ondelete="CASCADE"))
    activated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


class Alert(Base):
    """An anomaly on a machine: opened by an anomalous reading, extended by later ones, closed after a quiet
    period (reading time); operators acknowledge and comment."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default="anomaly")
    status: Mapped[str] = mapped_column(String(10), default="open")  # open, closed
    opened_at: Mapped[dt.datetime] = mapped_column()  # time of the first anomalous reading
    last_at: Mapped[dt.datetime] = mapped_column()  # time of the latest anomalous reading
    closed_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    peak_score: Mapped[float] = mapped_column(Float)
    anomalous_readings: Mapped[int] = mapped_column(Integer, default=1)
    sensors: Mapped[list] = mapped_column(JSON, default=list)  # [{"sensor", "score"}], the most anomalous first
    model_id: Mapped[int | None] = mapped_column(ForeignKey("machine_models.id", ondelete="SET NULL"), nullable=True)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)

    __table_args__ = (
        Index("ix_alerts_machine_time", "machine_id", "opened_at"),
        Index("ix_alerts_status", "status"),
    )


class AlertComment(Base):
    __tablename__ = "alert_comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


# -- scheduling --------------------------------------------------------------------------------------------------------
class Schedule(Base):
    """A job-shop instance and the plan solved for it; a replan is a new schedule whose parent is the plan it
    repaired (with the event and what changed). One schedule at most is active: the line's plan."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"), nullable=True)
    instance: Mapped[dict] = mapped_column(JSON)  # linewatch's instance JSON
    event: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the event a replan answered
    solver: Mapped[str | None] = mapped_column(String(30), nullable=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="new")  # new, solving, solved, failed
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # objective, value, makespan, bound, gap, ...
    plan: Mapped[dict | None] = mapped_column(JSON, nullable=True, deferred=True)  # the plan's JSON
    changes: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # a replan's: moved, shifted, interrupted
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)


# -- the digital twin ----------------------------------------------------------------------------------------------
class LineModel(Base):
    """A line's twin model (the library's line document, JSON), one per line; ``version`` counts its changes."""

    __tablename__ = "line_models"
    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), unique=True)
    model: Mapped[dict] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=now)


class TwinEvent(Base):
    """The twin's history: one change of one machine of a line. ``kind``: ``state`` (a state change or a count
    report, through the state machine), ``health`` (alerts, maintenance predictions: ``data``), ``buffer``
    (a buffer's level in ``data``). Time ``ts`` in seconds since the epoch (float: events keep their order)."""

    __tablename__ = "twin_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    line: Mapped[str] = mapped_column(String(100))
    machine: Mapped[str] = mapped_column(String(100))
    ts: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    job: Mapped[str | None] = mapped_column(String(100), nullable=True)
    source: Mapped[str] = mapped_column(String(20))  # mqtt, http, inspection, alert, maintenance
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=now)

    __table_args__ = (
        Index("ix_twin_events_line_ts", "line", "ts"),
        Index("ix_twin_events_line_machine_ts", "line", "machine", "ts"),
    )


class AuditEvent(Base):
    """Who did what and when: sign-ins, users, roles, API keys, models, reviews, deletions. The service only ever
    inserts (triggers refuse UPDATE and DELETE); ``actor_id`` is no foreign key, so an entry outlives its user."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=now, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))  # user name, user/key for an API key, or the name tried
    via: Mapped[str | None] = mapped_column(String(20), nullable=True)  # token, api_key, password, cli
    action: Mapped[str] = mapped_column(String(50), index=True)
    target: Mapped[str | None] = mapped_column(String(300), nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)  # the client's address
