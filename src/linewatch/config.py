"""All settings in one object: environment variables ``LINEWATCH_*``, or a TOML file named by
``LINEWATCH_CONFIG``; embedded defaults need nothing installed or started.

Production parts:
- ``LINEWATCH_DATABASE_URL=postgresql+psycopg://user:pass@host:5432/linewatch``
- ``LINEWATCH_BLOB_URL=s3://bucket/prefix`` with ``LINEWATCH_S3_ENDPOINT_URL``, ``LINEWATCH_S3_ACCESS_KEY``,
  ``LINEWATCH_S3_SECRET_KEY``, ``LINEWATCH_S3_REGION``
- ``LINEWATCH_QUEUE_URL=redis://host:6379/0`` or ``amqp://user:pass@host:5672/vhost``: training runs on
  ``linewatch worker`` processes instead of a thread of the service
- ``LINEWATCH_SEARCH_BACKEND=qdrant`` with ``LINEWATCH_QDRANT_URL=http://qdrant:6333`` (and
  ``LINEWATCH_QDRANT_API_KEY``, ``LINEWATCH_QDRANT_COLLECTION``): defect search on a Qdrant server instead of the
  embedded faiss index under ``data_dir/search`` (``linewatch.search.index_from_settings``)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from linewatch.vision.images import FORMATS, SAFE_FORMATS, parse_formats

QUEUE_SCHEMES = ("redis", "rediss", "amqp", "amqps")
Access = Literal["public", "auth", "off"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINEWATCH_", extra="ignore")

    data_dir: Path = Field(Path("linewatch-data"), description="database, images and models on embedded defaults")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under data_dir")
    blob_url: str | None = Field(None, description="file path or s3://bucket/prefix; default data_dir/blobs")
    s3_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None
    token_hours: float = Field(12.0, description="lifetime of a login token")
    max_upload_bytes: int = Field(50 * 1024 * 1024, description="largest accepted request body")
    max_image_pixels: int = Field(40_000_000, description="largest accepted image (width x height)")
    image_formats: Annotated[tuple[str, ...], NoDecode] = Field(
        FORMATS,
        description="image formats decoded, everywhere an image is read (comma-separated in the environment); "
        f"any of {', '.join(SAFE_FORMATS)}",
    )
    max_request_files: int = Field(16, ge=1, le=1000, description="most files in one inspect or search request")
    max_request_pixels: int = Field(
        48_000_000, ge=1, description="most pixels (width x height, summed over its images) one request may send"
    )
    request_time_budget_s: float = Field(
        30.0, gt=0, description="an inspect request still scoring after this many seconds is refused (413), whole"
    )
    login_failures_per_user: int = Field(10, ge=1, description="failed sign-ins of one user name per login_window_s")
    login_failures_per_client: int = Field(
        30, ge=1, description="failed sign-ins from one client address per login_window_s"
    )
    login_window_s: float = Field(300.0, gt=0, description="window of the sign-in limits; past them: 429")
    login_concurrency: int = Field(2, ge=1, description="password checks (argon2) run at once; more wait their turn")
    metrics_access: Access = Field("public", description="/metrics: public, auth (any token or API key) or off")
    docs_access: Access = Field(
        "public", description="/docs, /redoc and /openapi.json: public, auth (any token or API key) or off"
    )
    event_queue_size: int = Field(256, description="per-WebSocket-client queue; oldest events dropped beyond")
    queue_url: str | None = Field(
        None,
        description="job queue: redis://host:6379/0 or amqp://user:pass@host:5672/vhost; jobs then run on "
        "`linewatch worker` processes. Default: a thread of the service runs them",
    )
    queue_name: str = Field("linewatch", description="queue of the job messages; one per linewatch installation")
    events_url: str | None = Field(
        None,
        description="broker that carries events between processes (workers, several service instances): "
        "redis://... or amqp://...; default: queue_url; none: events stay in the process",
    )
    model_cache_size: int = Field(
        8, ge=1, le=1000, description="loaded models kept in memory (least recently used out)"
    )
    job_heartbeat_timeout: float = Field(
        120.0, gt=0, description="seconds without a heartbeat before a running job counts as lost (failed)"
    )
    duplicate_window_s: float = Field(
        3600.0, gt=0, description="an upload repeating one of the same station within this many seconds is a duplicate"
    )
    near_duplicate_bits: int = Field(
        16,
        ge=-1,
        le=64,
        description="perceptual-hash bits apart within which the images themselves are compared for a near "
        "duplicate (the same photo re-encoded or cropped by a few pixels); -1: exact only",
    )
    duplicate_recent: int = Field(500, ge=1, description="how many recent inspections a near duplicate is sought in")
    search_backend: Literal["faiss", "qdrant"] = Field(
        "faiss", description="defect search index: faiss (embedded, under data_dir/search) or qdrant (qdrant_url)"
    )
    qdrant_url: str | None = Field(None, description="Qdrant server for search_backend=qdrant, http://host:6333")
    registry_uri: str | None = Field(
        None,
        description="the team's MLflow Model Registry, its tracking URI (http://mlflow:5000, or "
        "sqlite:///PATH/mlflow.db): engineers import registered versions as model versions and publish versions to it; "
        "none: no registry",
    )
    qdrant_api_key: str | None = None
    qdrant_collection: str = Field("linewatch", description="Qdrant collection of this installation")

    # -- machines: sensor readings, their storage and alerts ---------------------------------------------------
    mqtt_url: str | None = Field(
        None,
        description="plant MQTT broker to take readings from: mqtt://host:1883 (mqtts:// for TLS, "
        "mqtt://user:password@host:1883); none: readings arrive over HTTP only",
    )
    mqtt_topic_prefix: str = Field(
        "linewatch", description="readings are published on <prefix>/<line>/<machine>", pattern=r"^[^#+\x00]+$"
    )
    mqtt_client_id: str = Field(
        "linewatch-service",
        description="MQTT client id: the broker keeps this id's session (QoS 1 readings queued while the service "
        "is down); give each service instance its own",
    )
    readings_bus_url: str | None = Field(
        None,
        description="NATS JetStream server (nats://host:4222) between MQTT and the ingesters, for several service "
        "instances: readings are kept in a stream until an ingester stored them",
    )
    readings_retention_days: float = Field(
        30.0, gt=0, description="raw readings are kept this long; per-minute and per-hour roll-ups beyond it"
    )
    rollup_retention_days: float = Field(400.0, gt=0, description="per-minute roll-ups are kept this long")
    max_future_s: float = Field(
        300.0, ge=0, description="a reading stamped further than this in the future is refused (a dead letter)"
    )
    alert_quiet_s: float = Field(
        60.0, gt=0, description="an alert closes after this many seconds (reading time) without an anomalous reading"
    )
    # -- the digital twin ------------------------------------------------------------------------------------------
    replan_on_machine_down: bool = Field(
        False,
        description="when a machine of the active plan goes down (a twin state event), start the replan job of the "
        "active schedule with a machine_down event",
    )
    replan_time_unit_s: float = Field(
        60.0, gt=0, description="seconds per time unit of the plans (plan time 0: its first schedule's creation)"
    )
    twin_simulation_workers: int = Field(
        2, ge=1, le=64, description="parallel processes for the replications of a twin simulation job"
    )
    ingest_batch: int = Field(20_000, ge=1, description="readings stored per database transaction at most")
    ingest_flush_ms: float = Field(50.0, gt=0, description="longest a reading waits to be stored, in ms")

    @field_validator("queue_url", "events_url", mode="before")
    @classmethod
    def _queue_url(cls, v):
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        scheme = urlsplit(str(v).strip()).scheme.lower()
        if scheme not in QUEUE_SCHEMES:
            raise ValueError("must be redis://host:port/db or amqp://user:password@host:port/vhost")
        return str(v).strip()

    @field_validator("image_formats", mode="before")
    @classmethod
    def _image_formats(cls, v):
        return parse_formats(v)

    @field_validator("queue_name")
    @classmethod
    def _queue_name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9._-]{0,99}", v):
            raise ValueError("queue_name: letters, digits, '.', '_' and '-', starting with a letter or '_'")
        return v

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("LINEWATCH_CONFIG")
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'linewatch.db').resolve()}"

    @property
    def blobs(self) -> str:
        return self.blob_url or str((self.data_dir / "blobs").resolve())

    @property
    def bus_url(self) -> str | None:
        """Where events travel between processes: ``events_url``, else the job queue's broker."""
        return self.events_url or self.queue_url

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def search_dir(self) -> Path:
        return self.data_dir / "search"
