"""Lines, machines and their sensors as resources: create, change, delete, import from a YAML or JSON file.

A machine belongs to one line, may feed inspection stations (their names), and has sensors (name, unit, expected
range). Each machine also has a hidden series, ``_score``, where its anomaly score is stored like a sensor's
readings (charts show it as a band). Every change publishes ``MachinesChanged`` after its commit, so ingesters
reload what they know of the machines.

The import file::

    lines:
      - name: line-1
        description: press shop
        machines:
          - name: press-1
            type: hydraulic press
            stations: [camera-1]
            sensors:
              - {name: oil_temp, unit: degC, low: 20, high: 90}
              - {name: pressure, unit: bar}

Importing creates what is new and updates what exists (nothing is deleted); a bad field is named by its path,
e.g. ``lines[0].machines[1].sensors[0].low: Input should be a valid number``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from linewatch.core.events import EventBus, MachinesChanged
from linewatch.errors import LinewatchError
from linewatch.services import readings
from linewatch.services.errors import Conflict, NotFound
from linewatch.store.tables import Line, Machine, Sensor

SCORE_SENSOR = "_score"
# names in topics and URLs: no '/', '#', '+', control characters, or a leading '_' (reserved)
NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._:@()-]{0,99}$"
Name = Annotated[str, StringConstraints(pattern=NAME, max_length=100)]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
MAX_FILE_BYTES = 5 * 1024 * 1024


def _not_bool(v):
    if isinstance(v, bool):
        raise ValueError("a number is needed, not true or false")
    return v


Number = Annotated[float, BeforeValidator(_not_bool)]


class SensorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    unit: Annotated[str, StringConstraints(max_length=30, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    low: Number | None = Field(
        None, description="lowest expected value: a reading below it raises an alert", allow_inf_nan=False
    )
    high: Number | None = Field(
        None, description="highest expected value: a reading above it raises an alert", allow_inf_nan=False
    )


class MachineUpdate(BaseModel):
    """A machine's definition (PUT /machines/{name}: the name is the path's)."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = Field(None, description="the machine's name: the path's (renaming is not supported)")
    line: Name | None = Field(None, description="the line's name (in an import file, given by the enclosing line)")
    type: Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    description: Text = ""
    stations: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100, description="inspection stations this machine feeds"
    )
    sensors: list[SensorSpec] = Field(default_factory=list, max_length=1000)


class MachineSpec(MachineUpdate):
    name: Name


class MachineIn(MachineSpec):
    """POST /machines: a machine with its line."""

    line: Name = Field(description="the line's name")


def check_spec(spec: MachineUpdate, where: str = "") -> None:
    """What a schema cannot say: sensor names once each, low not above high (Conflict, 409, naming the field)."""
    names = [x.name for x in spec.sensors]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise Conflict(f"{where}sensors: sensor names repeated: {', '.join(dup)}")
    for i, x in enumerate(spec.sensors):
        if x.low is not None and x.high is not None and x.low > x.high:
            raise Conflict(f"{where}sensors[{i}]: low ({x.low:g}) is above high ({x.high:g})")


class LineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Text = ""
    machines: list[MachineSpec] = Field(default_factory=list, max_length=10_000)


class ImportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[LineSpec] = Field(default_factory=list)
    machines: list[MachineSpec] = Field(default_factory=list, description="machines naming their line")


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "file"


def parse_import(data: bytes | str, filename: str = "") -> ImportSpec:
    """A YAML or JSON definition file, checked; LinewatchError names the first bad field by its path."""
    import yaml

    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise LinewatchError(f"{filename or 'the file'} is over {MAX_FILE_BYTES // 1024 // 1024} MB")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise LinewatchError(f"{filename or 'the file'} is not UTF-8 text") from None
    try:
        obj = json.loads(data) if filename.lower().endswith(".json") else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise LinewatchError(f"{filename or 'the file'} is not valid YAML or JSON{at}") from None
    except RecursionError:
        raise LinewatchError(f"{filename or 'the file'} is nested too deeply to read") from None
    if not isinstance(obj, dict):
        raise LinewatchError(f"{filename or 'the file'}: expected a mapping with 'lines' and/or 'machines'")
    try:
        spec = ImportSpec.model_validate(obj)
    except ValidationError as e:
        first = e.errors()[0]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise LinewatchError(f"{filename or 'the file'}: {_where(first['loc'])}: {msg}{more}") from None
    for i, m in enumerate(spec.machines):
        if not m.line:
            raise LinewatchError(f"{filename or 'the file'}: machines[{i}].line: the machine's line is required")
    seen: dict[str, str] = {}  # a machine listed twice in one file: the second would silently move or overwrite it
    placed = [(f"lines[{i}].machines[{j}]", m) for i, ln in enumerate(spec.lines) for j, m in enumerate(ln.machines)]
    for where, m in [*placed, *((f"machines[{i}]", m) for i, m in enumerate(spec.machines))]:
        if m.name in seen:
            raise LinewatchError(
                f"{filename or 'the file'}: {where}: machine {m.name!r} is listed twice (also at {seen[m.name]})"
            )
        seen[m.name] = where
    try:
        for i, ln in enumerate(spec.lines):
            for j, m in enumerate(ln.machines):
                check_spec(m, f"lines[{i}].machines[{j}].")
        for i, m in enumerate(spec.machines):
            check_spec(m, f"machines[{i}].")
    except Conflict as e:
        raise LinewatchError(f"{filename or 'the file'}: {e}") from None
    return spec


# -- reading ------------------------------------------------------------------------------------------------------
def list_lines(session: Session) -> list[Line]:
    return list(session.scalars(select(Line).order_by(Line.name)))


def line(session: Session, name: str) -> Line:
    row = session.scalar(select(Line).where(Line.name == name))
    if row is None:
        raise NotFound(f"unknown line {name!r}")
    return row


def list_machines(session: Session, line_name: str | None = None) -> list[Machine]:
    q = select(Machine).order_by(Machine.name)
    if line_name is not None:
        q = q.where(Machine.line_id == line(session, line_name).id)
    return list(session.scalars(q))


def machine(session: Session, name: str) -> Machine:
    row = session.scalar(select(Machine).where(Machine.name == name))
    if row is None:
        raise NotFound(f"unknown machine {name!r}")
    return row


def sensors_of(session: Session, machine_id: int, with_score: bool = False) -> list[Sensor]:
    q = select(Sensor).where(Sensor.machine_id == machine_id).order_by(Sensor.id)
    if not with_score:
        q = q.where(Sensor.kind == "sensor")
    return list(session.scalars(q))


def line_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Line.id, Line.name)).all())


# -- changing -----------------------------------------------------------------------------------------------------
def create_line(session: Session, bus: EventBus, name: str, description: str = "") -> Line:
    with session.begin():
        if session.scalar(select(Line.id).where(Line.name == name)) is not None:
            raise Conflict(f"line {name!r} already exists")
        row = Line(name=name, description=description)
        session.add(row)
    bus.publish(MachinesChanged(machines=[], change="line created"))
    return row


def _line_id(session: Session, name: str, create: bool) -> int:
    found = session.scalar(select(Line.id).where(Line.name == name))
    if found is not None:
        return found
    if not create:
        raise NotFound(f"unknown line {name!r}: create it first")
    row = Line(name=name)
    session.add(row)
    session.flush()
    return row.id


def _set_sensors(session: Session, m: Machine, specs: list[SensorSpec], remove_missing: bool) -> None:
    have = {s.name: s for s in sensors_of(session, m.id)}
    for spec in specs:
        row = have.get(spec.name)
        if row is None:
            session.add(Sensor(machine_id=m.id, name=spec.name, unit=spec.unit, low=spec.low, high=spec.high))
        else:
            row.unit, row.low, row.high = spec.unit, spec.low, spec.high
    if remove_missing:
        gone = [row for name, row in have.items() if name not in {s.name for s in specs}]
        readings.delete_sensors(session.connection(), [row.id for row in gone])
        for row in gone:
            session.delete(row)


def _upsert(session: Session, spec: MachineSpec, line_name: str, create_line_too: bool) -> tuple[Machine, bool]:
    line_id = _line_id(session, line_name, create_line_too)
    m = session.scalar(select(Machine).where(Machine.name == spec.name))
    created = m is None
    if m is None:
        m = Machine(name=spec.name, line_id=line_id, type=spec.type, description=spec.description)
        m.stations = list(spec.stations)
        session.add(m)
        session.flush()
        session.add(Sensor(machine_id=m.id, name=SCORE_SENSOR, kind="score", unit=""))
    else:
        m.line_id, m.type, m.description, m.stations = line_id, spec.type, spec.description, list(spec.stations)
    _set_sensors(session, m, spec.sensors, remove_missing=False)
    return m, created


def create_machine(session: Session, bus: EventBus, spec: MachineSpec) -> Machine:
    check_spec(spec)
    if not spec.line:
        raise LinewatchError("a machine needs its line")
    with session.begin():
        if session.scalar(select(Machine.id).where(Machine.name == spec.name)) is not None:
            raise Conflict(f"machine {spec.name!r} already exists")
        m, _ = _upsert(session, spec, spec.line, create_line_too=False)
    bus.publish(MachinesChanged(machines=[m.name], change="created"))
    return m


def update_machine(session: Session, bus: EventBus, name: str, spec: MachineUpdate) -> Machine:
    """Replace the machine's definition (its name stays); sensors left out are deleted with their readings."""
    if spec.name is not None and spec.name != name:
        raise Conflict(f"the body names machine {spec.name!r}, the path {name!r}: renaming is not supported")
    check_spec(spec)
    with session.begin():
        m = machine(session, name)
        m.line_id = _line_id(session, spec.line, create=False) if spec.line else m.line_id
        m.type, m.description, m.stations = spec.type, spec.description, list(spec.stations)
        _set_sensors(session, m, spec.sensors, remove_missing=True)
    bus.publish(MachinesChanged(machines=[m.name], change="updated"))
    return m


def delete_machine(session: Session, bus: EventBus, name: str) -> None:
    with session.begin():
        m = machine(session, name)
        ids = [s.id for s in sensors_of(session, m.id, with_score=True)]
        m.active_model_id = None
        session.flush()
        readings.delete_sensors(session.connection(), ids)
        session.delete(m)
    bus.publish(MachinesChanged(machines=[name], change="deleted"))


def import_spec(session: Session, bus: EventBus, spec: ImportSpec) -> dict:
    """Create or update every line, machine and sensor of the file, in one transaction."""
    created, updated = [], []
    with session.begin():
        for ln in spec.lines:
            row = session.scalar(select(Line).where(Line.name == ln.name))
            if row is None:
                session.add(Line(name=ln.name, description=ln.description))
                session.flush()
            elif ln.description:
                row.description = ln.description
            for m in ln.machines:
                if m.line and m.line != ln.name:
                    raise LinewatchError(f"machine {m.name!r} is listed under line {ln.name!r} but names {m.line!r}")
                _, new = _upsert(session, m, ln.name, create_line_too=True)
                (created if new else updated).append(m.name)
        for m in spec.machines:
            _, new = _upsert(session, m, m.line or "", create_line_too=True)
            (created if new else updated).append(m.name)
    names = created + updated
    bus.publish(MachinesChanged(machines=names, change="imported"))
    return {"lines": len(spec.lines), "created": created, "updated": updated}


def import_file(session: Session, bus: EventBus, path: Path) -> dict:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise LinewatchError(f"cannot read {path}: {e.strerror or e}") from None
    return import_spec(session, bus, parse_import(data, str(path)))
