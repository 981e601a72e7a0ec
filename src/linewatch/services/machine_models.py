"""Machine sensor models: trained as background jobs (job kind ``sensor_train``) from a machine's stored readings
in a time range or from an uploaded CSV/Parquet file, versioned, activated and rolled back like vision models,
and run live by the ingester (:class:`MachineScorer`).

A machine's model runs one of the sensor engine's detectors (``DETECTORS``). A streaming detector (the stream
detector, :class:`~linewatch.sensors.streaming.StreamingDetector`, or the surprise detector,
:class:`~linewatch.sensors.surprise.SurpriseDetector`) scores one series per sensor and is warmed on the training
readings: it starts live with its learning period behind it, its statistics at the machine's normal level, and keeps
adapting as it scores; its directory is the detector's checkpoint (``state.json`` manifest + ``state.npz`` arrays).
A table detector (any of the sensor engine's methods, as ``linewatch sensors fit`` makes it: mahalanobis, pca, knn,
lof, …) is one model over all the machine's sensors, fitted on the training readings and scored live by
:class:`~linewatch.sensors.live.LiveTable`; its directory is the sensor engine's model folder with the live state at
the end of the training readings inside (``live/``). No pickle.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from linewatch.core.events import EventBus, MachineModelActivated
from linewatch.core.modelfiles import replace_dir, staging_dir, write_json_atomic, zip_dir
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.methods import METHODS
from linewatch.services import machines as machines_svc
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict, NotFound
from linewatch.store.tables import Job, Machine, MachineActivation, MachineModel, Sensor

#: the detectors a machine's model can run, each with the service's defaults over the engine's. Streaming detectors
#: (one series per sensor): the stream detector raises one alert per anomalous time step (the service groups them
#: into alerts by its quiet period); the surprise detector keeps the engine's defaults. Table detectors (one model
#: over all the machine's sensors, ``linewatch sensors fit``'s), scored live by ``LiveTable``: every method of the
#: sensor engine's registry, with its defaults.
TABLE_DETECTORS: tuple[str, ...] = tuple(METHODS.names())
DETECTORS: dict[str, dict] = {"stream": {"suppress": 0}, "surprise": {}, **{m: {} for m in TABLE_DETECTORS}}
DEFAULT_DETECTOR = "stream"
MAX_TRAIN_ROWS = 5_000_000  # time steps a training job reads at most (the newest kept)
#: time steps a table model trains on at most (the newest kept): its features of every step are held at once
MAX_TABLE_ROWS = 200_000
CHUNK = 20_000
LIVE_DIR = "live"  # a table model's live state at the end of its training readings, inside its folder


def detector_class(method: str):
    """The engine's class of a machine model's streaming detector."""
    if method == "surprise":
        from linewatch.sensors.surprise import SurpriseDetector

        return SurpriseDetector
    if method == "stream":
        from linewatch.sensors.streaming import StreamingDetector

        return StreamingDetector
    raise LinewatchError(f"unknown machine model detector {method!r}: one of {', '.join(DETECTORS)}")


def _detector(method: str, params: dict):
    if method in TABLE_DETECTORS:
        from linewatch.core.extras import require

        require("sensors", f"a {method} machine model")
        return METHODS.create(method, **{**DETECTORS[method], **params})
    return detector_class(method)(**{**DETECTORS.get(method, {}), **params})


def next_version(session: Session, machine_id: int) -> int:
    """The version number a machine's next model (of any kind) takes."""
    latest = session.scalar(select(func.max(MachineModel.version)).where(MachineModel.machine_id == machine_id))
    return (latest or 0) + 1


def queue_model(session: Session, m, job_kind: str, user_id: int | None, **model) -> Job:
    """The machine's next model version (status "training", with these ``MachineModel`` fields) and the queued job
    of ``job_kind`` that fits it; the caller submits the job after its transaction commits."""
    job = Job(kind=job_kind, params={}, created_by=user_id)
    session.add(job)
    session.flush()
    mm = MachineModel(
        machine_id=m.id,
        version=next_version(session, m.id),
        status="training",
        job_id=job.id,
        created_by=user_id,
        **model,
    )
    session.add(mm)
    session.flush()
    job.params = {"machine_model_id": mm.id, "machine": m.name}
    return job


def check_params(params: dict, method: str = DEFAULT_DETECTOR) -> dict:
    """The detector's parameters as given, checked now (a bad one is a 400 before any job starts)."""
    det = _detector(method, params)
    try:
        det._validate_params()
    except (TypeError, ValueError) as e:
        raise LinewatchError(f"invalid sensor model parameter: {e}") from None
    return det.config()


def _write_dir(target: Path, write) -> None:
    """``write(folder)`` into a staging folder, then moved over ``target``: never a half-written model."""
    tmp = staging_dir(target)
    try:
        write(tmp)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- training -----------------------------------------------------------------------------------------------------
def wide_from_readings(engine, sensor_ids: dict[str, int], start_ms: int, end_ms: int):
    """The stored readings of the sensors in [start, end) as (times ms, values (steps, sensors)), NaN where a
    sensor has no reading at a time step."""
    cols = list(sensor_ids)
    index = {sid: j for j, sid in enumerate(sensor_ids.values())}
    ids = ",".join(str(int(s)) for s in sensor_ids.values())
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT sensor_id, ts, value FROM readings WHERE sensor_id IN ({ids}) AND ts >= :a AND ts < :b "
                "ORDER BY ts"
            ),
            {"a": start_ms, "b": end_ms},
        ).all()
    if not rows:
        return np.empty(0, np.int64), np.empty((0, len(cols)))
    sid, ts, val = (np.array(c) for c in zip(*rows, strict=True))
    steps, inverse = np.unique(ts.astype(np.int64), return_inverse=True)
    block = np.full((len(steps), len(cols)), np.nan)
    block[inverse, np.array([index[int(s)] for s in sid])] = val.astype(float)
    return steps, block


def newest_readings(engine, sensor_ids: dict[str, int], steps: int):
    """The newest ``steps`` time steps of the sensors' stored readings, as ``wide_from_readings`` gives them."""
    if steps <= 0 or not sensor_ids:
        return np.empty(0, np.int64), np.empty((0, len(sensor_ids)))
    ids = ",".join(str(int(s)) for s in sensor_ids.values())
    with engine.connect() as conn:
        times = (
            conn.execute(
                text(f"SELECT DISTINCT ts FROM readings WHERE sensor_id IN ({ids}) ORDER BY ts DESC LIMIT :n"),
                {"n": int(steps)},
            )
            .scalars()
            .all()
        )
    if not times:
        return np.empty(0, np.int64), np.empty((0, len(sensor_ids)))
    return wide_from_readings(engine, sensor_ids, int(min(times)), int(max(times)) + 1)


def wide_from_file(data: bytes, filename: str, sensors: list[str]):
    """An uploaded CSV or Parquet table: a time column (``time``, ``timestamp`` or the first) and one column per
    sensor of the machine (others ignored)."""
    from linewatch.core.extras import require

    require("sensors", "training a machine model from a file")
    import pandas as pd

    try:
        if filename.lower().endswith((".parquet", ".pq")):
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data))
    except Exception as e:  # pandas raises many kinds on a bad file
        raise LinewatchError(f"cannot read {filename or 'the file'} as CSV or Parquet: {e}") from None
    return frame_to_wide(frame, sensors, filename)


def frame_to_wide(frame, sensors: list[str], filename: str = "the file"):
    import pandas as pd

    time_col = next((c for c in ("time", "timestamp", "ts", "datetime") if c in frame.columns), frame.columns[0])
    known = [s for s in sensors if s in frame.columns]
    if not known:
        raise LinewatchError(f"{filename} has no column named like a sensor of the machine ({', '.join(sensors)})")
    t = frame[time_col]
    if pd.api.types.is_numeric_dtype(t):
        ms = (t.astype(float) * 1000).round()
    else:
        parsed = pd.to_datetime(t, utc=True, errors="coerce")
        if parsed.isna().all():
            raise LinewatchError(f"{filename}: the time column {time_col!r} holds no readable times")
        ms = (parsed.astype("int64") // 1_000_000).where(parsed.notna())
    ok = ms.notna().to_numpy()
    block = np.full((len(frame), len(sensors)), np.nan)
    for j, s in enumerate(sensors):
        if s in frame.columns:
            block[:, j] = pd.to_numeric(frame[s], errors="coerce").to_numpy(dtype=float)
    steps = ms.to_numpy()[ok].astype(np.int64)
    block = block[ok]
    order = np.argsort(steps, kind="stable")
    return steps[order], block[order]


def start_training(
    session: Session,
    ctx: AppContext,
    machine_name: str,
    params: dict,
    start: dt.datetime | None,
    end: dt.datetime | None,
    upload: tuple[str, bytes] | None,
    user_id: int | None,
    method: str = DEFAULT_DETECTOR,
) -> Job:
    """A queued ``sensor_train`` job and its model version (status "training") running detector ``method``."""
    config = check_params(params, method)
    with session.begin():
        m = machines_svc.machine(session, machine_name)
        sensors = [s.name for s in machines_svc.sensors_of(session, m.id)]
        if not sensors:
            raise Conflict(f"machine {machine_name!r} has no sensors")
        source: dict = {}
        if upload is not None:
            name, data = upload
            sha = ctx.blobs.put(data)
            source = {"file": name, "sha256": sha, "bytes": len(data)}
        else:
            end = end or dt.datetime.now(dt.UTC)
            start = start or end - dt.timedelta(days=7)
            if start >= end:
                raise LinewatchError("the training range is empty: start must be before end")
            source = {"start": start.isoformat(), "end": end.isoformat()}
        job = queue_model(
            session, m, "sensor_train", user_id, method=method, params=config, sensors=sensors, source=source
        )
    ctx.jobs.submit(job.id)
    return job


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def run_sensor_training(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Job kind ``sensor_train``: warm the machine's detector on its readings, measure it, save, mark ready."""
    started = time.perf_counter()
    with ctx.sessions() as s:
        mm = s.get(MachineModel, params["machine_model_id"])
        if mm is None:
            raise LinewatchError("the machine model version no longer exists")
        sensor_rows = s.scalars(
            select(Sensor).where(
                Sensor.machine_id == mm.machine_id, Sensor.kind == "sensor", Sensor.name.in_(mm.sensors)
            )
        ).all()
        machine_name = s.get(Machine, mm.machine_id).name
    by_name = {r.name: r.id for r in sensor_rows}
    names = [n for n in mm.sensors if n in by_name]
    if not names:
        raise LinewatchError("the machine's sensors were deleted")
    progress("read", 0, 1)
    if "sha256" in mm.source:
        steps, block = wide_from_file(ctx.blobs.get(mm.source["sha256"]), mm.source.get("file", ""), names)
    else:
        a = int(dt.datetime.fromisoformat(mm.source["start"]).timestamp() * 1000)
        b = int(dt.datetime.fromisoformat(mm.source["end"]).timestamp() * 1000)
        steps, block = wide_from_readings(ctx.engine, {n: by_name[n] for n in names}, a, b)
    if len(steps) > MAX_TRAIN_ROWS:
        steps, block = steps[-MAX_TRAIN_ROWS:], block[-MAX_TRAIN_ROWS:]
    progress("read", 1, 1)
    if mm.method in TABLE_DETECTORS:
        return _train_table(ctx, mm, machine_name, names, steps, block, progress, started)
    det = _detector(mm.method, mm.params).start(len(names), names)
    lp = det.params_["learning_period"]
    present = np.isfinite(block).sum(axis=0)
    if len(steps) == 0 or present.max() <= lp:
        raise LinewatchError(
            f"too few readings to train on: {int(present.max()) if len(steps) else 0} for the best-covered sensor, "
            f"the detector learns from the first {lp} (learning_period): widen the time range"
        )
    alerts = np.zeros(len(names))
    for i in range(0, len(steps), CHUNK):
        _, al = det.update_many(block[i : i + CHUNK])
        alerts += al.sum(axis=0)
        progress("warm", min(i + CHUNK, len(steps)), len(steps))
    after = np.maximum(present - lp, 1)
    # how often each sensor alerted on the training readings after its learning period: the false-alarm rate to
    # expect if those readings were normal
    metrics = _metrics(
        steps, block, names, det.params_["threshold"], started, alerts / after, alerts.sum() / after.sum()
    )
    return _finish(ctx, mm, machine_name, names, metrics, det.save, progress)


def _metrics(steps, block, names: list[str], threshold, started: float, sensor_rates, alert_rate) -> dict:
    """A machine model's training figures: what it read, per sensor too, and how often it alerted there."""
    present = np.isfinite(block).sum(axis=0)
    return {
        "time_steps": int(len(steps)),
        "readings": int(present.sum()),
        "from": dt.datetime.fromtimestamp(steps[0] / 1000, dt.UTC).isoformat(),
        "to": dt.datetime.fromtimestamp(steps[-1] / 1000, dt.UTC).isoformat(),
        "threshold": float(threshold),
        "training_seconds": round(time.perf_counter() - started, 3),
        "sensors": [
            {
                "sensor": n,
                "readings": int(present[j]),
                "mean": _finite(np.nanmean(block[:, j])) if present[j] else None,
                "std": _finite(np.nanstd(block[:, j])) if present[j] else None,
                "alert_rate": float(sensor_rates[j]),
            }
            for j, n in enumerate(names)
        ],
        "alert_rate": float(alert_rate),
    }


def _finish(ctx: AppContext, mm: MachineModel, machine_name: str, names: list[str], metrics: dict, write, progress):
    """Write the model's folder (``write(folder)``), mark the version ready, and the job's result."""
    progress("save", 0, 1)
    target = ctx.settings.models_dir / "machines" / machine_name / f"v{mm.version}-{mm.id}"
    _write_dir(target, write)
    with ctx.sessions() as s, s.begin():
        row = s.get(MachineModel, mm.id)
        row.status, row.metrics, row.path, row.sensors = "ready", metrics, str(target), names
    progress("save", 1, 1)
    return {
        "machine_model_id": mm.id,
        "machine": machine_name,
        "version": mm.version,
        **{k: metrics[k] for k in ("time_steps", "readings", "alert_rate")},
    }


def _run_live(live, steps, block, progress=None) -> tuple[np.ndarray, int]:
    """Readings run through a table model live, in pieces: its alerting time steps counted for the sensor leading
    each (per sensor), and in all."""
    alerts = np.zeros(block.shape[1])
    alerting = 0
    for i in range(0, len(steps), CHUNK):
        _, shares, al = live.update(block[i : i + CHUNK], steps[i : i + CHUNK] / 1000.0)
        alerting += int(al.sum())
        np.add.at(alerts, shares[al].argmax(axis=1), 1)  # each alerting step counts for its leading sensor
        if progress is not None:
            progress("check", min(i + CHUNK, len(steps)), len(steps))
    return alerts, alerting


def _train_table(ctx, mm, machine_name: str, names: list[str], steps, block, progress, started: float) -> dict:
    """A table detector fitted on the newest ``MAX_TABLE_ROWS`` time steps (its threshold set on the last of them,
    held out), then run over them all as it will run live: its alert rate there, and its live state (the rows the
    next readings' features look back over) saved beside it."""
    from linewatch.sensors.live import LiveTable
    from linewatch.sensors.saving import save

    if len(steps) > MAX_TABLE_ROWS:
        steps, block = steps[-MAX_TABLE_ROWS:], block[-MAX_TABLE_ROWS:]
    if len(steps) < 50:
        raise LinewatchError(f"too few readings to train on: {len(steps)} time steps, a table model needs 50")
    det = _detector(mm.method, mm.params)
    progress("fit", 0, 1)
    det.fit([(block, steps / 1000.0)], sensors=names)
    progress("fit", 1, 1)
    live = LiveTable(det)
    alerts, alerting = _run_live(live, steps, block, progress)
    # the share of the training time steps it alerts on, each counted for its leading sensor too
    metrics = _metrics(steps, block, names, det.threshold_, started, alerts / len(steps), alerting / len(steps))

    def write(folder: Path) -> None:
        save(det, folder, {"machine": machine_name, "rows": int(len(steps))})
        live.save(folder / LIVE_DIR)

    return _finish(ctx, mm, machine_name, names, metrics, write, progress)


# -- a model fitted elsewhere ---------------------------------------------------------------------------------------
#: the files of a sensor engine model folder (``linewatch sensors fit --out``), and what an upload of one may unpack to
MODEL_FILES = ("manifest.json", "train_features.npy", "check_features.npy", "check_scores.npy")
MAX_MODEL_BYTES = 1 << 30
MAX_MODEL_MEMBERS = 1000
#: an imported table model is run over this many of the machine's newest time steps (its alert rate there)
IMPORT_CHECK_STEPS = 10_000


def _unpack_model(upload_name: str, data: bytes, folder: Path) -> None:
    """The model folder's files from an uploaded zip (at its top or in one folder of it) written into ``folder``."""
    import zipfile
    from pathlib import PurePosixPath

    from linewatch.services.errors import TooLarge

    hint = "upload a zip of the folder `linewatch sensors fit --out` wrote"
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise LinewatchError(f"{upload_name} is not a zip: {hint}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            found: dict[str, zipfile.ZipInfo] = {}
            if len(z.infolist()) > MAX_MODEL_MEMBERS:
                raise TooLarge(f"{upload_name} holds {len(z.infolist())} entries; a model folder has a handful")
            for info in z.infolist():
                path = PurePosixPath(info.filename)
                if info.is_dir() or path.name not in MODEL_FILES or any(p.startswith(".") for p in path.parts):
                    continue
                if path.name in found:
                    raise LinewatchError(f"{upload_name} holds more than one {path.name}: zip one model folder")
                found[path.name] = info
            missing = [f for f in MODEL_FILES if f not in found]
            if missing:
                raise LinewatchError(f"{upload_name} has no {', '.join(missing)}: {hint}")
            if len({PurePosixPath(i.filename).parent for i in found.values()}) > 1:
                raise LinewatchError(f"{upload_name}: the model's files are in different folders of the zip")
            if sum(i.file_size for i in found.values()) > MAX_MODEL_BYTES:
                raise TooLarge(f"{upload_name}: the model unpacks to over 1 GiB")
            for name, info in found.items():
                # streamed to disk; reading stops at the declared size (a lying header fails its CRC check)
                with z.open(info) as src, open(folder / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except LinewatchError:
        raise
    except Exception as e:  # BadZipFile, zlib.error, an encrypted member, an unsupported compression method...
        raise LinewatchError(f"{upload_name}: corrupt or unsupported zip ({e})") from None


def zip_model(mm: MachineModel) -> bytes:
    """A ready model's folder as a zip (its files at the top, sub-folders kept: a table model's ``live/``)."""
    if mm.status != "ready" or not mm.path:
        raise Conflict(f"machine model {mm.id} is {mm.status}, not ready")
    folder = Path(mm.path)
    if not folder.is_dir():
        raise Conflict(f"machine model {mm.id}'s folder is gone from the models folder")
    return zip_dir(folder)


def import_model(sessions, models_dir: Path, machine_name: str, upload_name: str, data: bytes, user_id: int | None):
    """A table model fitted elsewhere (``linewatch sensors fit``, uploaded as a zip of its folder) as the machine's
    next model version, ready to activate: see ``_import_staged``. ``sessions``: the store's session factory;
    ``models_dir``: the service's."""
    root = Path(models_dir) / "machines" / machine_name
    with sessions() as s:
        machines_svc.machine(s, machine_name)  # an unknown machine is a 404 before anything is written
    stage = staging_dir(root / "import")
    try:
        _unpack_model(upload_name, data, stage)
        source = {"file": upload_name, "bytes": len(data), "imported": True}
        return _import_staged(sessions, root, stage, machine_name, upload_name, source, user_id)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def import_registered(ctx: AppContext, machine_name: str, ref: str, user_id: int | None):
    """A sensors model of the team's MLflow Model Registry (``ref``: NAME, NAME/VERSION or NAME@ALIAS; pushed with
    ``linewatch registry push`` or published from another service) as the machine's next model version: downloaded,
    checked file by file against its manifest, then as an uploaded one (``_import_staged``)."""
    import tempfile

    from linewatch.core.modelregistry import pull
    from linewatch.services.registry import found_or_not, registry_uri

    uri = registry_uri(ctx)
    root = ctx.settings.models_dir / "machines" / machine_name
    with ctx.sessions() as s:
        machines_svc.machine(s, machine_name)
    root.mkdir(parents=True, exist_ok=True)
    download = Path(tempfile.mkdtemp(dir=root, prefix=".registry-"))
    stage = staging_dir(root / "import")
    try:
        try:
            got = pull(ref, download / "model", uri)
        except LinewatchError as e:
            raise found_or_not(e) from None
        if got.engine != "sensors":
            raise Conflict(f"{ref} is a {got.engine} model: a machine's sensor model comes from the sensors engine")
        for name in MODEL_FILES:
            if (download / "model" / name).is_file():
                shutil.move(str(download / "model" / name), str(stage / name))
        source = {"registry": {"ref": ref, "name": got.name, "version": got.version, "run_id": got.run_id, "uri": uri}}
        return _import_staged(ctx.sessions, root, stage, machine_name, ref, source, user_id)
    finally:
        shutil.rmtree(download, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)


def _import_staged(sessions, root: Path, stage: Path, machine_name: str, what: str, source: dict, user_id):
    """The table model whose files are in ``stage`` as the machine's next version, ready to activate: loaded and
    checked as the sensor engine loads it (its stored rows score as when it was saved; a reason names ``what``, never
    the server's folders), its sensors all the machine's. It is run live over the machine's newest stored readings
    (``IMPORT_CHECK_STEPS``): its metrics are its alert rate there, per sensor too, and its live state starts where
    they end; without stored readings, the next readings are scored as the first rows of a batch are."""
    from linewatch.sensors.live import LiveTable
    from linewatch.sensors.saving import load

    with sessions() as s:
        m = machines_svc.machine(s, machine_name)
        machine_sensors = {x.name: x.id for x in machines_svc.sensors_of(s, m.id)}
        engine = s.get_bind()
    placed: Path | None = None
    try:
        try:
            det = load(stage)
        except ModelFileError as e:
            raise LinewatchError(str(e).replace(str(stage), what)) from None
        names = list(det.sensors)
        unknown = [n for n in names if n not in machine_sensors]
        if unknown:
            raise Conflict(
                f"the model reads sensors that machine {machine_name!r} does not have: {', '.join(unknown)} "
                "(its sensors are the columns it was fitted on)"
            )
        live = LiveTable(det)
        started = time.perf_counter()
        steps, block = newest_readings(
            engine, {n: machine_sensors[n] for n in names}, max(IMPORT_CHECK_STEPS, live.context)
        )
        metrics: dict = {"sensors": [{"sensor": n} for n in names]}
        if len(steps):
            # how it fares on this machine: its alert rate on the newest readings (the false alarms to expect if they
            # were normal), per sensor too; its live state is where they end
            alerts, alerting = _run_live(live, steps, block)
            metrics = _metrics(steps, block, names, det.threshold_, started, alerts / len(steps), alerting / len(steps))
            del metrics["training_seconds"]
        live.save(stage / LIVE_DIR)
        info = det.manifest_.get("info") or {}
        metrics.update(
            threshold=float(det.threshold_),
            imported=True,
            linewatch_version=str(det.manifest_.get("linewatch_version", "")),
            training_rows=info.get("rows") if isinstance(info.get("rows"), int) else None,
            checked_on_time_steps=int(len(steps)),
        )
        with sessions() as s, s.begin():
            m = machines_svc.machine(s, machine_name)
            mm = MachineModel(
                machine_id=m.id,
                version=next_version(s, m.id),
                status="ready",
                created_by=user_id,
                method=det.method,
                params=det.config(),
                sensors=names,
                source=source,
                metrics=metrics,
            )
            s.add(mm)
            s.flush()
            placed = root / f"v{mm.version}-{mm.id}"
            replace_dir(stage, placed)
            mm.path = str(placed)
        return mm
    except BaseException:
        if placed is not None:  # the version was not stored: nor is its folder kept
            shutil.rmtree(placed, ignore_errors=True)
        raise


# -- versions and activation ---------------------------------------------------------------------------------------
def list_models(session: Session, machine_name: str) -> list[MachineModel]:
    m = machines_svc.machine(session, machine_name)
    return list(
        session.scalars(select(MachineModel).where(MachineModel.machine_id == m.id).order_by(MachineModel.id.desc()))
    )


def get_model(session: Session, model_id: int) -> MachineModel:
    mm = session.get(MachineModel, model_id)
    if mm is None:
        raise NotFound(f"no machine model {model_id}")
    return mm


def _previous(session: Session, m: Machine) -> int | None:
    history = session.scalars(
        select(MachineActivation.model_id)
        .where(MachineActivation.machine_id == m.id)
        .order_by(MachineActivation.id.desc())
    ).all()
    return next((mid for mid in history if mid != m.active_model_id), None)


def previous_models(session: Session) -> dict[int, int | None]:
    """Per machine id, the model a rollback would bring back."""
    out: dict[int, list[int]] = {}
    for machine_id, model_id in session.execute(
        select(MachineActivation.machine_id, MachineActivation.model_id).order_by(MachineActivation.id.desc())
    ):
        out.setdefault(machine_id, []).append(model_id)
    active = dict(session.execute(select(Machine.id, Machine.active_model_id)).all())
    return {mid: next((x for x in hist if x != active.get(mid)), None) for mid, hist in out.items()}


def activate(session: Session, bus: EventBus, model_id: int, user_id: int | None) -> Machine:
    with session.begin():
        mm = get_model(session, model_id)
        if mm.status != "ready":
            raise Conflict(f"machine model {model_id} is {mm.status}, not ready")
        m = session.get(Machine, mm.machine_id)
        before = m.active_model_id
        m.active_model_id = mm.id
        session.add(MachineActivation(machine_id=m.id, model_id=mm.id, activated_by=user_id))
    bus.publish(MachineModelActivated(machine=m.name, model_id=mm.id, previous_model_id=before))
    return m


def rollback(session: Session, bus: EventBus, machine_name: str, user_id: int | None) -> Machine:
    with session.begin():
        m = machines_svc.machine(session, machine_name)
        previous = _previous(session, m)
        if previous is None:
            raise Conflict(f"machine {machine_name!r} has no earlier model to roll back to")
        before = m.active_model_id
        m.active_model_id = previous
        session.add(MachineActivation(machine_id=m.id, model_id=previous, activated_by=user_id))
    bus.publish(MachineModelActivated(machine=m.name, model_id=previous, previous_model_id=before))
    return m


# -- live scoring --------------------------------------------------------------------------------------------------
class MachineScorer:
    """A machine's active model, running: scores readings per sensor in time order, remembers each sensor's
    newest scored time (older readings are stored but not scored), checkpoints its state. A streaming detector
    scores each sensor's series (the machine's score: the highest); a table detector scores each time step over all
    sensors (each sensor's score: its share of the step's)."""

    def __init__(self, model_id: int, detector, last_ts: np.ndarray):
        self.model_id = model_id
        self.det = detector
        self.table = hasattr(detector, "context")  # a LiveTable
        self.names: list[str] = list(detector.names_)
        self.column = {n: j for j, n in enumerate(self.names)}
        self.last_ts = last_ts
        self.threshold = float(detector.threshold if self.table else detector.params_["threshold"])

    @classmethod
    def open(cls, model_id: int, model_path: str, live_dir: Path, method: str = "stream") -> MachineScorer:
        """The live checkpoint of this model when there is one, else the trained state; ``method``: its detector."""
        live = live_dir / str(model_id)
        if method in TABLE_DETECTORS:
            from linewatch.sensors.live import LiveTable
            from linewatch.sensors.saving import load

            det = load(Path(model_path))
            for state in (live, Path(model_path) / LIVE_DIR):
                if (state / "state.json").is_file():
                    try:
                        table = LiveTable(det).restore(state)
                        last = _last_ts(state, table.n_series) if state == live else None
                        return cls(model_id, table, last if last is not None else _unseen(table.n_series))
                    except (ModelFileError, OSError, ValueError):
                        pass  # an unreadable checkpoint: the state the training left, else none
            return cls(model_id, LiveTable(det), _unseen(len(det.sensors)))
        detector = detector_class(method)
        if (live / "state.json").is_file():
            try:
                det = detector.load(live)
                last = _last_ts(live, det.n_series)
                if last is not None:
                    return cls(model_id, det, last)
            except (ModelFileError, OSError, ValueError):
                pass  # an unreadable checkpoint: start again from the trained state
        det = detector.load(Path(model_path))
        return cls(model_id, det, _unseen(det.n_series))

    def checkpoint(self, live_dir: Path) -> None:
        def write(tmp: Path) -> None:
            self.det.save(tmp)
            write_json_atomic(tmp / "last_ts.json", self.last_ts.tolist())

        _write_dir(live_dir / str(self.model_id), write)

    def score(self, cols: np.ndarray, ts: np.ndarray, values: np.ndarray):
        """Readings (column index, time ms, value) of one batch: (time steps, machine score per step, per-sensor
        scores (steps, sensors), whether each step alerts). Readings not newer than their sensor's last scored
        one are skipped."""
        fresh = ts > self.last_ts[cols]
        cols, ts, values = cols[fresh], ts[fresh], values[fresh]
        if not len(ts):
            return np.empty(0, np.int64), np.empty(0), np.empty((0, len(self.names))), np.empty(0, bool)
        steps, inverse = np.unique(ts, return_inverse=True)
        block = np.full((len(steps), len(self.names)), np.nan)
        block[inverse, cols] = values
        if self.table:
            score, shares, alert = self.det.update(block, steps / 1000.0)
            out = steps, score, score[:, None] * shares, alert
        else:
            scores, alerts = self.det.update_many(block)
            out = steps, scores.max(axis=1), scores, alerts.any(axis=1)
        np.maximum.at(self.last_ts, cols, ts)
        return out


def _unseen(n: int) -> np.ndarray:
    return np.full(n, -1, dtype=np.int64)


def _last_ts(live: Path, n: int) -> np.ndarray | None:
    """Each sensor's newest scored time kept beside a live checkpoint, or None."""
    try:
        last = np.array(json.loads((live / "last_ts.json").read_text()), dtype=np.int64)
    except (OSError, ValueError):
        return None
    return last if last.shape == (n,) else None
