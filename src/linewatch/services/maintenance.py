"""Predictive maintenance in the service: each machine may have a maintenance model (the maintenance engine's
remaining-useful-life network or failure-risk trees) trained as a background job (``maintenance_train``) on an
uploaded run-to-failure history, and the service keeps its predictions as the machine's readings arrive.

A model's *cycle* is a fixed span of reading time (``cycle_s``, e.g. an hour): the machine's readings are averaged
per cycle, counted from its life start (its last maintenance, or its first reading), and each completed cycle gets a
prediction: RUL in cycles with its conformal interval, or the probability of failure. A prediction whose RUL lower
bound falls under ``alert_below_s`` (or whose probability rises over ``alert_above``) opens a maintenance alert,
closed when maintenance is recorded (``maintenance_done``), which also starts a new life.

The uploaded history's columns must be named like the machine's sensors (a unit and a cycle column besides): the
model then reads the machine's readings by the same names.

A RUL model can also be trained on the machine's own stored readings (``start_training_from_readings``): each life
that ran to failure (from one maintenance, or the first reading, to a failure recorded with ``maintenance_done``'s
``failed_at``) is one run-to-failure history, its readings averaged per cycle exactly as the live predictions read
them. With ``fleet`` the lives of every machine sharing the machine's type count too.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linewatch.core.events import AlertChanged, Event, EventBus, MaintenancePredicted
from linewatch.errors import LinewatchError
from linewatch.services import machines as machines_svc
from linewatch.services.alerts import alert_dict
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict
from linewatch.services.machine_models import queue_model
from linewatch.services.periodic import Periodic
from linewatch.services.readings import HOUR_MS, MINUTE_MS, TEN_MINUTES_MS
from linewatch.store.tables import (
    Alert,
    Job,
    Machine,
    MachineModel,
    MaintenanceEvent,
    MaintenancePrediction,
    Sensor,
    now,
)

log = logging.getLogger("linewatch.maintenance")
CHECK_EVERY_S = 10.0
SERVICE_KEYS = ("target", "cycle_s", "alert_below_s", "alert_above")
MAX_CYCLES = 5_000  # cycles of a life read back for one prediction at most (the newest)


def _service_params(params: dict) -> tuple[dict, dict]:
    """(the service's settings of the model, the engine's parameters)."""
    own = {k: params[k] for k in SERVICE_KEYS if k in params}
    rest = {k: v for k, v in params.items() if k not in SERVICE_KEYS}
    target = own.setdefault("target", "rul")
    if target not in ("rul", "failure"):
        raise LinewatchError("target must be rul (remaining useful life) or failure (failure probability)")
    cycle_s = own.setdefault("cycle_s", 3600.0)
    if not isinstance(cycle_s, int | float) or isinstance(cycle_s, bool) or not 1 <= cycle_s <= 30 * 86400:
        raise LinewatchError("cycle_s must be a number of seconds between 1 and 2,592,000 (30 days)")
    below = own.setdefault("alert_below_s", 86400.0 if target == "rul" else None)
    if below is not None and (not isinstance(below, int | float) or isinstance(below, bool) or below < 0):
        raise LinewatchError("alert_below_s must be a number of seconds >= 0")
    above = own.setdefault("alert_above", 0.5 if target == "failure" else None)
    if above is not None and (not isinstance(above, int | float) or isinstance(above, bool) or not 0 < above < 1):
        raise LinewatchError("alert_above must be a probability between 0 and 1")
    return own, rest


def _estimator(target: str, params: dict):
    from linewatch.maintenance.failure import FailureRisk
    from linewatch.maintenance.rul import RulCNN

    cls = RulCNN if target == "rul" else FailureRisk
    est = cls(**params)
    try:
        est._validate_params()
    except (TypeError, ValueError) as e:
        raise LinewatchError(f"invalid maintenance model parameter: {e}") from None
    return est


def start_training(
    session: Session, ctx: AppContext, machine_name: str, upload: tuple[str, bytes], params: dict, user_id: int | None
) -> Job:
    from linewatch.core.extras import require

    require("maintenance", "training a maintenance model")
    own, rest = _service_params(params)
    _estimator(own["target"], rest)
    name, data = upload
    if not data:
        raise LinewatchError("the history file is empty")
    with session.begin():
        m = machines_svc.machine(session, machine_name)
        sha = ctx.blobs.put(data)
        job = _queue_training(session, m, own, rest, {"file": name, "sha256": sha, "bytes": len(data)}, user_id)
    ctx.jobs.submit(job.id)
    return job


def _queue_training(session: Session, m: Machine, own: dict, rest: dict, source: dict, user_id: int | None) -> Job:
    """The machine's next model version, in training, and the ``maintenance_train`` job that fits it."""
    return queue_model(
        session,
        m,
        "maintenance_train",
        user_id,
        kind=own["target"],
        method="cnn" if own["target"] == "rul" else "boosted",
        params={**own, **rest},
        sensors=[],
        source=source,
    )


def _fleet(session: Session, m: Machine, fleet: bool) -> list[Machine]:
    """The machine, or every machine sharing its type (the machine first)."""
    if not fleet:
        return [m]
    if not m.type:
        raise Conflict(f"machine {m.name!r} has no type: a fleet is the machines sharing a type (set the type)")
    others = session.scalars(select(Machine).where(Machine.type == m.type, Machine.id != m.id).order_by(Machine.id))
    return [m, *others]


def runs_to_failure(session: Session, machine_ids: list[int]) -> list[tuple[int, int | None, int]]:
    """Every recorded life that ran to failure: (machine id, its start in ms or None for the machine's first
    reading, the failure in ms). A life starts at a maintenance (or the first reading) and ends at the next one;
    it ran to failure when that maintenance records ``failed_at``."""
    runs = []
    for mid in machine_ids:
        start = None
        for e in session.scalars(
            select(MaintenanceEvent).where(MaintenanceEvent.machine_id == mid).order_by(MaintenanceEvent.time)
        ):
            if e.failed_at is not None:
                runs.append((mid, start, _ms(e.failed_at)))
            start = _ms(e.time)
    return runs


def start_training_from_readings(
    session: Session, ctx: AppContext, machine_name: str, params: dict, fleet: bool, user_id: int | None
) -> Job:
    """A ``maintenance_train`` job fitting a RUL model on the stored readings of the machine's (or its fleet's)
    lives that ran to failure. 409 when fewer are recorded than the model's folds need (one unit per fold)."""
    from linewatch.core.extras import require

    require("maintenance", "training a maintenance model")
    own, rest = _service_params(params)
    if own["target"] != "rul":
        raise LinewatchError(
            "training on stored readings makes a remaining-useful-life model (target rul); a failure-risk model "
            "trains on an uploaded table with failure labels (train-file)"
        )
    est = _estimator(own["target"], rest)
    folds = est._validate_params()["folds"]
    with session.begin():
        m = machines_svc.machine(session, machine_name)
        group = _fleet(session, m, fleet)
        runs = runs_to_failure(session, [x.id for x in group])
        if len(runs) < folds:
            where = f"machine {m.name!r}" if not fleet else f"the {len(group)} machine(s) of type {m.type!r}"
            raise Conflict(
                f"{len(runs)} run(s) to failure recorded for {where}; training needs at least {folds} (one per "
                "fold: fewer folds, or record failures with maintenance done and failed_at"
                + (", or train on the fleet" if not fleet else "")
                + ", or upload a run-to-failure history)"
            )
        source = {"readings": {"machines": [x.name for x in group], "runs_recorded": len(runs)}}
        job = _queue_training(session, m, own, rest, source, user_id)
    ctx.jobs.submit(job.id)
    return job


def stored_histories(ctx: AppContext, machine: Machine, source: dict, cycle_s: float):
    """Run-to-failure histories from stored readings: one unit per life that ran to failure, its readings
    averaged per completed cycle from the life's start (as the live predictions read them), RUL in cycles from
    each cycle's end to the failure. The sensors are the machine's; a fleet machine lacking one is left out.
    (histories, what was used and left out)."""
    import pandas as pd

    from linewatch.maintenance.tables import Histories

    cycle_ms = int(cycle_s * 1000)
    with ctx.sessions() as s:
        names = [x.name for x in machines_svc.sensors_of(s, machine.id)]
        if not names:
            raise LinewatchError(f"machine {machine.name!r} has no sensors")
        group = [machine] + [
            x for x in s.scalars(select(Machine).where(Machine.name.in_(source["machines"]), Machine.id != machine.id))
        ]
        ids, skipped = {}, []
        for x in group:
            have = {y.name: y.id for y in machines_svc.sensors_of(s, x.id)}
            lack = [n for n in names if n not in have]
            if lack:
                skipped.append(f"{x.name}: no sensor {lack[0]!r}")
            else:
                ids[x.id] = (x.name, [have[n] for n in names])
        runs = runs_to_failure(s, list(ids))
    units, cycles, sensors, rul = [], [], [], []
    with ctx.engine.connect() as conn:
        for mid, start, failed in runs:
            name, sids = ids[mid]
            if start is None:  # the machine's first life: from its first reading, as the live predictions count
                found = conn.execute(
                    text(
                        f"SELECT min(bucket) FROM readings_1m WHERE sensor_id IN ({','.join(map(str, sids))}) "
                        "AND bucket < :e"
                    ),
                    {"e": failed},
                ).scalar()
                if found is None:
                    skipped.append(f"{name}: no readings before its failure at {_dt(failed).isoformat()}")
                    continue
                start = int(found)
            ks, means = cycle_means(conn, sids, start, cycle_ms, failed)
            done = start + (ks + 1) * cycle_ms <= failed  # completed cycles only
            ks, means = ks[done], means[done]
            if not len(ks):
                skipped.append(f"{name}: no complete cycle of readings before its failure at {_dt(failed).isoformat()}")
                continue
            filled = pd.DataFrame(means).ffill().bfill().to_numpy()
            if np.isnan(filled).any():
                bad = names[int(np.flatnonzero(np.isnan(filled).any(axis=0))[0])]
                skipped.append(f"{name}: no reading of {bad!r} in the life failing at {_dt(failed).isoformat()}")
                continue
            units.append(np.full(len(ks), len(units) + 1, dtype=np.int64))
            cycles.append((ks + 1).astype(np.float64))
            sensors.append(filled)
            rul.append((failed - (start + (ks + 1) * cycle_ms)) / cycle_ms)
    info = {"runs": len(units), "machines": sorted({v[0] for v in ids.values()}), "left_out": skipped[:20]}
    if not units:
        raise LinewatchError("no run to failure with readings: " + "; ".join(skipped[:3]))
    h = Histories(
        np.concatenate(units),
        np.concatenate(cycles),
        np.zeros((sum(len(u) for u in units), 0)),
        np.concatenate(sensors),
        [],
        names,
        np.concatenate(rul),
    )
    return h, info


def run_training(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """Job kind ``maintenance_train``: fit the engine's model on the uploaded history (its columns must be the
    machine's sensors) or on the stored readings of lives that ran to failure."""
    from linewatch.maintenance.tables import read_table

    started = time.perf_counter()
    with ctx.sessions() as s:
        mm = s.get(MachineModel, params["machine_model_id"])
        if mm is None:
            raise LinewatchError("the maintenance model version no longer exists")
        machine = s.get(Machine, mm.machine_id)
        sensors = {x.name for x in machines_svc.sensors_of(s, machine.id)}
    own, rest = _service_params(mm.params)
    progress("read", 0, 1)
    if "readings" in mm.source:
        frame, used = stored_histories(ctx, machine, mm.source["readings"], own["cycle_s"])
        est = _estimator(own["target"], rest)
        folds = est._validate_params()["folds"]
        if used["runs"] < folds:
            raise LinewatchError(
                f"{used['runs']} run(s) to failure have readings; training needs at least {folds} (one per fold)"
                + (f"; left out: {'; '.join(used['left_out'][:3])}" if used["left_out"] else "")
            )
    else:
        used = None
        frame = _uploaded_frame(ctx, mm, job_id, read_table)
    progress("read", 1, 1)
    return _fit_and_store(ctx, mm, machine, sensors, own, rest, frame, used, started, progress)


def _uploaded_frame(ctx: AppContext, mm: MachineModel, job_id: int, read_table):
    suffix = Path(mm.source.get("file", "")).suffix.lower() or ".csv"
    tmp = Path(ctx.settings.data_dir) / "tmp" / f"maintenance-{job_id}{suffix}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(ctx.blobs.get(mm.source["sha256"]))
    try:
        return read_table(tmp)
    finally:
        tmp.unlink(missing_ok=True)


def _fit_and_store(ctx, mm, machine, sensors, own, rest, frame, used, started, progress) -> dict:
    from linewatch.core.modelfiles import replace_dir, staging_dir
    from linewatch.maintenance.saving import save

    est = _estimator(own["target"], rest)
    progress("fit", 0, 1)
    if own["target"] == "rul":
        est.fit(frame, progress=lambda _stage, done, total: progress("fit", done, total))
        columns = [*est.setting_names_, *est.sensor_names_]
    else:
        est.fit(frame)
        columns = [*est.numeric_, *est.categories_]
    missing = [c for c in columns if c not in sensors]
    if missing:
        raise LinewatchError(
            f"the history's column(s) {', '.join(missing[:8])} are not sensors of machine {machine.name!r}: "
            "name the machine's sensors like the history's columns"
        )
    progress("fit", 1, 1)
    target = ctx.settings.models_dir / "machines" / machine.name / f"maintenance-v{mm.version}-{mm.id}"
    staging = staging_dir(target)
    try:
        save(est, staging / "model")
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    metrics = {"training_seconds": round(time.perf_counter() - started, 2), **dict(est.train_info_)}
    if used is not None:
        metrics["readings"] = used
    with ctx.sessions() as s, s.begin():
        row = s.get(MachineModel, mm.id)
        row.status, row.metrics, row.path, row.sensors = "ready", _jsonable(metrics), str(target / "model"), columns
    return {"machine_model_id": mm.id, "machine": machine.name, "version": mm.version}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# -- the live predictions ----------------------------------------------------------------------------------------------
def _ms(value: dt.datetime) -> int:
    return int((value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp() * 1000)


def _dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def cycle_means(
    conn, sensor_ids: list[int], origin_ms: int, cycle_ms: int, end_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per completed cycle of ``cycle_ms`` from ``origin_ms`` up to ``end_ms``: (cycle indices from 0, means
    (cycles, sensors), NaN where a sensor had no reading). Read from the coarsest roll-up that divides the cycle."""
    table, width = "readings", 1
    for t, w in (("readings_1h", HOUR_MS), ("readings_10m", TEN_MINUTES_MS), ("readings_1m", MINUTE_MS)):
        if cycle_ms % w == 0 and origin_ms % w == 0:
            table, width = t, w
            break
    ids = ",".join(str(int(s)) for s in sensor_ids)
    col, agg_sum, agg_n = ("bucket", "sum(vsum)", "sum(n)") if width > 1 else ("ts", "sum(value)", "count(*)")
    rows = conn.execute(
        text(
            f"SELECT sensor_id, ({col} - :o) / :c AS k, {agg_sum}, {agg_n} FROM {table} WHERE sensor_id IN ({ids}) "
            f"AND {col} >= :o AND {col} < :e GROUP BY sensor_id, k ORDER BY k"
        ),
        {"o": origin_ms, "c": cycle_ms, "e": end_ms},
    ).all()
    if not rows:
        return np.empty(0, np.int64), np.empty((0, len(sensor_ids)))
    index = {sid: j for j, sid in enumerate(sensor_ids)}
    ks = sorted({int(r[1]) for r in rows})
    pos = {k: i for i, k in enumerate(ks)}
    out = np.full((len(ks), len(sensor_ids)), np.nan)
    for sid, k, vsum, n in rows:
        out[pos[int(k)], index[sid]] = float(vsum) / n
    return np.array(ks, dtype=np.int64), out


class MaintenanceWatcher(Periodic):
    """A thread: every few seconds, each machine with a maintenance model gets predictions for the cycles its
    readings completed since the last one."""

    name, every_s, what = "linewatch-maintenance", CHECK_EVERY_S, "maintenance predictions"

    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self._models: dict[int, tuple[int, object]] = {}  # machine id -> (model id, estimator)

    def _estimator(self, mm: MachineModel):
        have = self._models.get(mm.machine_id)
        if have is not None and have[0] == mm.id:
            return have[1]
        from linewatch.maintenance.saving import load

        est = load(mm.path)
        self._models[mm.machine_id] = (mm.id, est)
        return est

    def run_once(self) -> int:
        """Predict every completed cycle not predicted yet; the number of predictions stored."""
        with self.ctx.sessions() as s:
            rows = s.execute(
                select(Machine, MachineModel)
                .join(MachineModel, MachineModel.id == Machine.maintenance_model_id)
                .where(MachineModel.status == "ready", Machine.last_reading_at.is_not(None))
            ).all()
            work = [(m.id, m.name, m.life_start, m.last_reading_at, mm) for m, mm in rows]
        stored = 0
        for machine_id, name, life_start, last_reading, mm in work:
            try:
                stored += self._machine(machine_id, name, life_start, last_reading, mm)
            except Exception as e:
                log.warning("machine %s: no maintenance prediction: %s", name, e)
        return stored

    def _machine(self, machine_id, name, life_start, last_reading, mm: MachineModel) -> int:
        own, _ = _service_params(mm.params)
        cycle_ms = int(own["cycle_s"] * 1000)
        with self.ctx.sessions() as s:
            sensors = dict(s.execute(select(Sensor.name, Sensor.id).where(Sensor.machine_id == machine_id)).all())
            origin = _ms(life_start) if life_start is not None else None
            if origin is None:
                ids = ",".join(map(str, sensors.values()))
                first = s.execute(text(f"SELECT min(bucket) FROM readings_1m WHERE sensor_id IN ({ids})")).scalar()
                if first is None:
                    return 0
                origin = int(first)
            done_before = (
                s.scalar(
                    select(func.max(MaintenancePrediction.cycle)).where(
                        MaintenancePrediction.machine_id == machine_id,
                        MaintenancePrediction.model_id == mm.id,
                        MaintenancePrediction.time >= _dt(origin),
                    )
                )
                or 0
            )
        end = origin + ((_ms(last_reading) - origin) // cycle_ms) * cycle_ms  # completed cycles only
        if (end - origin) // cycle_ms <= done_before:
            return 0
        missing = [c for c in mm.sensors if c not in sensors]
        if missing:
            raise LinewatchError(f"the model reads sensor(s) the machine no longer has: {', '.join(missing)}")
        start = max(origin, end - MAX_CYCLES * cycle_ms)
        with self.ctx.engine.connect() as conn:
            ks, means = cycle_means(conn, [sensors[c] for c in mm.sensors], origin, cycle_ms, end)
        keep = ks >= (start - origin) // cycle_ms
        ks, means = ks[keep], means[keep]
        if not len(ks):
            return 0
        import pandas as pd

        frame = pd.DataFrame(means, columns=mm.sensors).ffill().bfill()
        if frame.isna().any().any():
            return 0  # a sensor without a single reading in this life yet
        frame.insert(0, "cycle", ks + 1)
        frame.insert(0, "unit", 1)
        est = self._estimator(mm)
        new = ks + 1 > done_before
        if own["target"] == "rul":
            pred = est.predict(frame, all_cycles=True)
            values = {
                "rul": pred.rul,
                "rul_low": pred.rul_low,
                "rul_high": pred.rul_high,
            }
            cycles = pred.cycle.astype(int)
        else:
            pred = est.predict(frame)
            values = {"failure_probability": pred.probability}
            cycles = ks + 1
        order = {int(c): i for i, c in enumerate(cycles)}
        rows = []
        for k in ks[new] + 1:
            i = order.get(int(k))
            if i is None:
                continue
            rows.append(
                {
                    "machine_id": machine_id,
                    "model_id": mm.id,
                    "time": _dt(origin + int(k) * cycle_ms),
                    "cycle": int(k),
                    **{key: float(v[i]) for key, v in values.items()},
                }
            )
        if not rows:
            return 0
        events: list[Event] = []
        try:
            with self.ctx.sessions() as s, s.begin():
                s.add_all([MaintenancePrediction(**r) for r in rows])
                s.flush()
                events.extend(self._alert(s, machine_id, name, mm, own, rows[-1]))
        except IntegrityError:  # another service process stored these cycles first (and published them)
            log.debug("machine %s: its predictions were stored by another process", name)
            return 0
        last = rows[-1]
        self.ctx.bus.publish(
            MaintenancePredicted(
                machine=name,
                time=last["time"].timestamp(),
                cycle=last["cycle"],
                cycle_s=float(own["cycle_s"]),
                rul=last.get("rul"),
                rul_low=last.get("rul_low"),
                rul_high=last.get("rul_high"),
                failure_probability=last.get("failure_probability"),
                model_id=mm.id,
            )
        )
        for e in events:
            self.ctx.bus.publish(e)
        return len(rows)

    def _alert(self, s: Session, machine_id: int, name: str, mm: MachineModel, own: dict, last: dict) -> list[Event]:
        reason = None
        if own["target"] == "rul" and own.get("alert_below_s") is not None:
            low_s = last["rul_low"] * own["cycle_s"]
            if low_s < own["alert_below_s"]:
                reason = (
                    f"remaining useful life's lower bound {last['rul_low']:.1f} cycles ({low_s / 3600:.1f} h) is under "
                    f"{own['alert_below_s'] / 3600:g} h"
                )
        elif (
            own["target"] == "failure"
            and own.get("alert_above") is not None
            and last["failure_probability"] > own["alert_above"]
        ):
            reason = f"failure probability {last['failure_probability']:.2f} over {own['alert_above']:g}"
        if reason is None:
            return []
        open_alert = s.scalar(
            select(Alert).where(Alert.machine_id == machine_id, Alert.kind == "maintenance", Alert.status == "open")
        )
        score = float(last.get("rul_low") if last.get("rul_low") is not None else last.get("failure_probability"))
        if open_alert is None:
            open_alert = Alert(
                machine_id=machine_id,
                kind="maintenance",
                opened_at=last["time"],
                last_at=last["time"],
                peak_score=score,
                anomalous_readings=1,
                sensors=[{"reason": reason}],
                model_id=mm.id,
            )
            s.add(open_alert)
            s.flush()
            change = "opened"
        else:
            open_alert.last_at, open_alert.sensors = last["time"], [{"reason": reason}]
            open_alert.anomalous_readings += 1
            change = "extended"
        return [AlertChanged(alert=alert_dict(open_alert, name), change=change)]


def maintenance_done(
    session: Session,
    bus: EventBus,
    machine_name: str,
    at: dt.datetime | None,
    failed_at: dt.datetime | None = None,
    user_id: int | None = None,
) -> Machine:
    """Maintenance was done: the machine's life starts again (cycles count from ``at``), its maintenance alerts
    close. ``failed_at``: the machine had failed then, so the life ending here ran to failure (its readings can
    train a RUL model)."""
    at = at or now()
    events = []
    with session.begin():
        m = machines_svc.machine(session, machine_name)
        if failed_at is not None:
            if _ms(failed_at) > _ms(at):
                raise Conflict("failed_at is after the maintenance's time: a machine is repaired after it fails")
            if m.life_start is not None and _ms(failed_at) <= _ms(m.life_start):
                raise Conflict(
                    f"failed_at is not after the machine's life start ({_dt(_ms(m.life_start)).isoformat()}): "
                    "a life ends after it starts"
                )
        if m.life_start is not None and _ms(at) < _ms(m.life_start):
            raise Conflict(
                f"the maintenance's time is before the machine's last one ({_dt(_ms(m.life_start)).isoformat()})"
            )
        session.add(MaintenanceEvent(machine_id=m.id, time=at, failed_at=failed_at, created_by=user_id))
        m.life_start = at
        for a in session.scalars(
            select(Alert).where(Alert.machine_id == m.id, Alert.kind == "maintenance", Alert.status == "open")
        ):
            a.status, a.closed_at = "closed", at
            events.append(AlertChanged(alert=alert_dict(a, m.name), change="closed"))
    for e in events:
        bus.publish(e)
    return m


def history(session: Session, machine_name: str, start: dt.datetime, end: dt.datetime) -> tuple[Machine, list]:
    m = machines_svc.machine(session, machine_name)
    rows = session.scalars(
        select(MaintenancePrediction)
        .where(
            MaintenancePrediction.machine_id == m.id,
            MaintenancePrediction.time >= start,
            MaintenancePrediction.time < end,
        )
        .order_by(MaintenancePrediction.time)
        .limit(10_000)
    ).all()
    return m, list(rows)


def activate(session: Session, bus: EventBus, model_id: int) -> Machine:
    from linewatch.core.events import MachineModelActivated

    with session.begin():
        mm = session.get(MachineModel, model_id)
        if mm is None or mm.kind == "anomaly":
            raise Conflict(f"machine model {model_id} is not a maintenance model")
        if mm.status != "ready":
            raise Conflict(f"machine model {model_id} is {mm.status}, not ready")
        m = session.get(Machine, mm.machine_id)
        before = m.maintenance_model_id
        m.maintenance_model_id = mm.id
    bus.publish(MachineModelActivated(machine=m.name, model_id=mm.id, previous_model_id=before, kind=mm.kind))
    return m
