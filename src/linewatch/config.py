"""All settings in one object: environment variables ``LINEWATCH_*``, or a TOML file named by
``LINEWATCH_CONFIG``; embedded defaults need nothing installed or started.

Production parts:
- ``LINEWATCH_DATABASE_URL=postgresql+psycopg://user:pass@host:5432/linewatch``
- ``LINEWATCH_BLOB_URL=s3://bucket/prefix`` with ``LINEWATCH_S3_ENDPOINT_URL``, ``LINEWATCH_S3_ACCESS_KEY``,
  ``LINEWATCH_S3_SECRET_KEY``, ``LINEWATCH_S3_REGION``
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


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
    event_queue_size: int = Field(256, description="per-WebSocket-client queue; oldest events dropped beyond")

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
    def models_dir(self) -> Path:
        return self.data_dir / "models"
