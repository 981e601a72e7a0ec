"""What the running service holds: settings, database, blob store, loaded models, events, jobs, metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from linewatch.api.events import EventHub
from linewatch.api.metrics import Metrics
from linewatch.config import Settings
from linewatch.errors import LinewatchError
from linewatch.store.blobs import BlobStore


class ModelCache:
    """Loaded scorers by model version id: the ONNX export when there is one, else the PyTorch model."""

    def __init__(self):
        self._models: dict[int, object] = {}
        self._lock = threading.Lock()

    def get(self, model_id: int, path: str | Path):
        with self._lock:
            scorer = self._models.get(model_id)
            if scorer is None:
                from linewatch.vision.runtime import open_model

                scorer = open_model(path)
                self._models[model_id] = scorer
            return scorer

    def forget(self, model_id: int) -> None:
        with self._lock:
            self._models.pop(model_id, None)


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    events: EventHub
    metrics: Metrics
    models: ModelCache = field(default_factory=ModelCache)
    jobs: object | None = None  # JobRunner, set once started
    search: object | None = None  # SearchHub
    recent: object | None = None  # RecentUploads: spotting repeated uploads


class NotFound(LinewatchError):
    """A resource the request names does not exist (404)."""


class Conflict(LinewatchError):
    """The request conflicts with the current state (409)."""
