"""What the running service holds: settings, database, blob store, loaded models, the event bus and its live
fan-out, jobs, search, metrics. ``build_context`` connects the parts; the API, the CLI and the workers share it."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from linewatch.config import Settings
from linewatch.core.events import EventBus
from linewatch.services.errors import Conflict, NotFound  # noqa: F401  (re-exported)
from linewatch.services.live import EventHub
from linewatch.services.metrics import Metrics
from linewatch.store.blobs import BlobStore, open_blob_store
from linewatch.store.db import make_engine, migrate, session_factory

log = logging.getLogger("linewatch.events")

if TYPE_CHECKING:
    from linewatch.services.accounts import SignIns
    from linewatch.services.drift import DriftWatcher
    from linewatch.services.ingest import Ingester
    from linewatch.services.jobqueue import QueueJobs
    from linewatch.services.jobs import JobRunner
    from linewatch.services.maintenance import MaintenanceWatcher
    from linewatch.services.mqtt import ReadingSources
    from linewatch.services.searching import RecentUploads, SearchHub
    from linewatch.services.twin import TwinInbox, TwinService


class ModelCache:
    """Loaded scorers by model version id: the ONNX export when there is one, else the PyTorch model. Holds the
    ``size`` most recently used; older ones are let go (a station switching models does not grow memory)."""

    def __init__(self, size: int = 8):
        self.size = size
        self._models: OrderedDict[int, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_id: int, path: str | Path):
        with self._lock:
            scorer = self._models.get(model_id)
            if scorer is None:
                from linewatch.vision.runtime import open_model

                scorer = open_model(path)
                hint = getattr(scorer, "search_hint", None)  # an export made for another kind of CPU
                if hint:
                    logging.getLogger("linewatch.models").warning(
                        "model version %s: %s", model_id, hint.replace("MODEL", str(path))
                    )
                self._models[model_id] = scorer
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
            else:
                self._models.move_to_end(model_id)
            return scorer

    def forget(self, model_id: int) -> None:
        with self._lock:
            self._models.pop(model_id, None)

    def __len__(self) -> int:
        return len(self._models)


class TtlCache:
    """Values looked up in the database, kept for ``ttl_s`` seconds, for what every request of a camera reads again:
    its API key (with the key's owner) and its station's active model. Each was a transaction of its own per image,
    about 1.5 ms of a request on PostgreSQL. Whoever changes what a value was read from clears the cache (``clear``)
    in this process; a change made by another process is seen within ``ttl_s``. Only successful lookups are kept,
    so a new station or key is found at once."""

    def __init__(self, ttl_s: float = 2.0, size: int = 1024):
        self.ttl_s = ttl_s
        self.size = size
        self._items: OrderedDict[object, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0  # a lookup that started before a clear must not store what it read

    def get(self, key):
        """The value, or None when absent or older than ``ttl_s``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if time.monotonic() - item[0] > self.ttl_s:
                del self._items[key]
                return None
            return item[1]

    def generation(self) -> int:
        """Pass to ``put``: a value read after this is stored only if nothing cleared the cache in between."""
        with self._lock:
            return self._generation

    def put(self, key, value, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._items.clear()


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    bus: EventBus
    live: EventHub  # the bus's events, fanned out to WebSocket clients
    metrics: Metrics
    models: ModelCache = field(default_factory=ModelCache)
    keys: TtlCache = field(default_factory=TtlCache)  # API key secret digest -> Principal
    station_models: TtlCache = field(default_factory=TtlCache)  # station name -> (Station, ModelVersion)
    jobs: JobRunner | QueueJobs | None = None  # set once started
    search: SearchHub | None = None
    recent: RecentUploads | None = None  # spotting repeated uploads
    ingester: Ingester | None = None  # sensor readings: stored, scored, alerts (set once started)
    sources: ReadingSources | None = None  # MQTT / NATS inputs of the ingester
    maintenance: MaintenanceWatcher | None = None  # machines' maintenance predictions
    drift: DriftWatcher | None = None  # stations' drift levels
    logins: SignIns | None = None  # sign-in throttling and admission
    twin: TwinService | None = None  # the lines' digital twins: live state from events (set once started)
    twin_inbox: TwinInbox | None = None  # machine state messages from MQTT


def build_context(settings: Settings) -> AppContext:
    """Connect to the parts and migrate the database (raises DatabaseError with a clear message). The bus is
    connected to other processes (``settings.bus_url``) when ``start_bus`` is called."""
    from linewatch.services.accounts import SignIns
    from linewatch.services.searching import RecentUploads, SearchHub
    from linewatch.services.subscribers import subscribe_all
    from linewatch.vision.images import set_formats

    set_formats(settings.image_formats)  # every image this process reads: uploads, datasets, search

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    migrate(engine)
    blobs = open_blob_store(
        settings.blobs,
        endpoint_url=settings.s3_endpoint_url,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        region=settings.s3_region,
    )
    sessions = session_factory(engine)
    ctx = AppContext(
        settings,
        engine,
        sessions,
        blobs,
        EventBus(),
        EventHub(settings.event_queue_size),
        Metrics(),
        models=ModelCache(settings.model_cache_size),
    )
    ctx.search = SearchHub(settings, sessions)
    ctx.recent = RecentUploads(sessions)
    ctx.logins = SignIns(settings)
    subscribe_all(ctx)
    return ctx


def start_bus(ctx: AppContext, retry_s: float = 5.0) -> None:
    """Carry events to and from other processes over ``settings.bus_url`` (Redis or RabbitMQ), when set. A broker
    that is down now is tried again in the background: events stay in this process until it is back."""
    url = ctx.settings.bus_url
    if not url or ctx.bus.transport is not None:
        return
    from linewatch.core.transports import TransportUnavailable, make_transport

    transport = make_transport(url, ctx.settings.queue_name)

    def connect() -> bool:
        try:
            transport.start(ctx.bus.receive)
        except TransportUnavailable as e:
            log.warning("%s; events stay in this process until it is reachable", e)
            return False
        ctx.bus.transport = transport
        return True

    if not connect():

        def retry() -> None:
            while not connect():
                time.sleep(retry_s)

        threading.Thread(target=retry, name="linewatch-events-connect", daemon=True).start()
