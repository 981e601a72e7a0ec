"""The line model: machines with their operations and cycle times, buffers, inspection stations, routings per product
and the product mix, shift calendars, failure and repair behaviour, rework and scrap. One file (YAML or JSON) is read
by :func:`load_line`; a bad field is named by its path (``machines[2].cycle_time_s: must be > 0``).

A part of a product visits the operations of its routing in order. Each operation has one input buffer (declared
with ``before: <operation>``, or an implicit one-place handover); the machines that offer the operation take parts
from it, so two machines with the same operation work in parallel. An inspection station finds a part defective at its
``defect_rate``; a defective part goes back to ``rework_to`` with probability ``rework_fraction`` and is scrapped
otherwise. Failures happen after a time to failure counted in *operating* (running) time, and take a time to repair
counted in calendar time. Without ``arrivals`` the line is saturated (the first operation never starves); with it,
parts arrive at those intervals. Shifts give the planned operation time; outside them machines finish the part in
hand and wait. Times: cycle times in seconds, MTBF in hours, MTTR in minutes (the field names say so).

    name: bottling
    timezone: Europe/Berlin
    shifts: [{name: early, start: "06:00", end: "14:00", days: [mon, tue, wed, thu, fri]}]
    machines:
      - {name: filler, operation: fill, cycle_time_s: {dist: normal, mean: 6, sd: 0.5}, ideal_cycle_time_s: 5.5,
         failures: [{cause: valve jam, mtbf_h: 6, mttr_min: 12}]}
    buffers: [{name: before-capper, before: cap, capacity: 40}]
    inspections: [{machine: inspector, station: bottle-camera, defect_rate: 0.02, rework_fraction: 0.5,
                   rework_to: fill}]
    products: [{name: cola, mix: 0.7, routing: [fill, cap]}, {name: water, mix: 0.3, routing: [fill, cap]}]

Scenarios (:func:`apply_scenario`) are overrides of this document: lists are merged by name (``machines`` and
``buffers`` and ``products`` and ``shifts`` by ``name``, ``inspections`` by ``machine``), an entry with a new name is
added (``like: <existing>`` copies one first), ``remove: true`` deletes one, and ``mix: {product: share}`` sets the
product mix.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, model_validator

from linewatch.errors import LinewatchError
from linewatch.twin.distributions import Dist

MAX_FILE_BYTES = 5 * 1024 * 1024
NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._:@()-]{0,99}$"  # the same names as the service's machines and stations
Name = Annotated[str, StringConstraints(pattern=NAME, max_length=100)]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_PRODUCT = "part"


class TwinModelError(LinewatchError):
    """A line model or scenario that cannot be used; the message names the bad field by its path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Operation(_Strict):
    name: Name
    cycle_time_s: Dist = Field(description="the time one part takes (seconds), fixed or a distribution")
    ideal_cycle_time_s: float | None = Field(
        None, gt=0, description="the nameplate time per part for OEE performance (default: the cycle time's mean)"
    )

    @model_validator(mode="after")
    def _positive(self) -> Operation:
        if not self.cycle_time_s.mean_value > 0:
            raise _at("cycle_time_s", "must be > 0")
        return self

    @property
    def ideal_s(self) -> float:
        return self.ideal_cycle_time_s or self.cycle_time_s.mean_value


class Failure(_Strict):
    """One failure mode: MTBF/MTTR (exponential) or distributions of the time to failure and to repair."""

    cause: Annotated[str, StringConstraints(max_length=100)] = "failure"
    mtbf_h: float | None = Field(None, gt=0, description="mean operating hours between failures (exponential)")
    mttr_min: float | None = Field(None, gt=0, description="mean minutes to repair (exponential)")
    time_to_failure_h: Dist | None = None
    time_to_repair_min: Dist | None = None

    @model_validator(mode="after")
    def _one_each(self) -> Failure:
        if (self.mtbf_h is None) == (self.time_to_failure_h is None):
            raise ValueError("give exactly one of mtbf_h and time_to_failure_h")
        if (self.mttr_min is None) == (self.time_to_repair_min is None):
            raise ValueError("give exactly one of mttr_min and time_to_repair_min")
        if self.time_to_failure_h is not None and not self.time_to_failure_h.mean_value > 0:
            raise _at("time_to_failure_h", "must be > 0")
        return self

    @property
    def ttf_s(self) -> Dist:
        if self.mtbf_h is not None:
            return Dist(dist="exponential", mean=self.mtbf_h * 3600)
        return self.time_to_failure_h.scaled(3600)

    @property
    def ttr_s(self) -> Dist:
        if self.mttr_min is not None:
            return Dist(dist="exponential", mean=self.mttr_min * 60)
        return self.time_to_repair_min.scaled(60)


class Machine(_Strict):
    name: Name
    type: Annotated[str, StringConstraints(max_length=100)] = ""
    operation: Name | None = Field(None, description="shorthand for one operation (with cycle_time_s)")
    cycle_time_s: Dist | None = None
    ideal_cycle_time_s: float | None = Field(None, gt=0)
    operations: list[Operation] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _one_failure(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("failures"), dict):
            v = {**v, "failures": [v["failures"]]}
        return v

    @model_validator(mode="after")
    def _ops(self) -> Machine:
        if self.operation is not None:
            if self.operations:
                raise ValueError("give either operation (with cycle_time_s) or operations, not both")
            if self.cycle_time_s is None:
                raise _at("cycle_time_s", "is required with operation")
            if not self.cycle_time_s.mean_value > 0:
                raise _at("cycle_time_s", "must be > 0")
        elif not self.operations:
            raise _at("operation", "a machine needs an operation (with cycle_time_s) or a list of operations")
        elif self.cycle_time_s is not None or self.ideal_cycle_time_s is not None:
            raise _at("cycle_time_s", "goes with operation; with operations give each operation its cycle_time_s")
        return self

    @property
    def ops(self) -> list[Operation]:
        if self.operation is not None:
            return [
                Operation(
                    name=self.operation, cycle_time_s=self.cycle_time_s, ideal_cycle_time_s=self.ideal_cycle_time_s
                )
            ]
        return self.operations

    def op(self, name: str) -> Operation | None:
        return next((o for o in self.ops if o.name == name), None)


class Buffer(_Strict):
    name: Name
    before: Name = Field(description="the operation whose input this buffer holds")
    capacity: int | None = Field(..., ge=1, description="parts it holds; null: unlimited")


class Inspection(_Strict):
    machine: Name = Field(description="the machine that inspects")
    station: Name = Field(description="the vision station (the service's station name) that inspects there")
    defect_rate: float = Field(ge=0, le=1)
    rework_fraction: float = Field(0.0, ge=0, le=1, description="share of defective parts reworked, the rest scrapped")
    rework_to: Name | None = Field(None, description="the operation a reworked part goes back to")

    @model_validator(mode="after")
    def _target(self) -> Inspection:
        if self.rework_fraction > 0 and self.rework_to is None:
            raise _at("rework_to", "is required when rework_fraction > 0")
        return self


class Product(_Strict):
    name: Name
    mix: float = Field(1.0, ge=0, description="share of releases (normalised over products)")
    routing: list[Name] = Field(min_length=1, description="operations in order")


class Arrivals(_Strict):
    interarrival_s: Dist


class Shift(_Strict):
    name: Name
    start: str = Field(description="HH:MM local time")
    end: str = Field(description="HH:MM local time; before start: the shift ends the next day")
    days: list[str] = Field(default_factory=lambda: list(DAYS), description="days the shift starts on")

    @model_validator(mode="after")
    def _times(self) -> Shift:
        for f in ("start", "end"):
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", getattr(self, f)):
                raise _at(f, "must be HH:MM (00:00 to 23:59)")
        if self.start == self.end:
            raise _at("end", "must differ from start")
        for i, d in enumerate(self.days):
            if d not in DAYS:
                raise _at(f"days[{i}]", f"must be one of {', '.join(DAYS)}")
        return self

    @property
    def start_time(self) -> dtime:
        return dtime.fromisoformat(self.start)

    @property
    def end_time(self) -> dtime:
        return dtime.fromisoformat(self.end)


class Line(_Strict):
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    timezone: str = "UTC"
    shifts: list[Shift] = Field(default_factory=list, description="planned operation time; none: always planned")
    machines: list[Machine] = Field(min_length=1)
    buffers: list[Buffer] = Field(default_factory=list)
    inspections: list[Inspection] = Field(default_factory=list)
    products: list[Product] = Field(default_factory=list)
    arrivals: Arrivals | None = None

    _source: dict | None = PrivateAttr(None)

    # -- derived views -----------------------------------------------------------------------------------------
    @property
    def product_list(self) -> list[Product]:
        """The products; without any, one product visiting every operation in the order the machines list them."""
        if self.products:
            return self.products
        seen: list[str] = []
        for m in self.machines:
            for o in m.ops:
                if o.name not in seen:
                    seen.append(o.name)
        return [Product(name=DEFAULT_PRODUCT, routing=seen)]

    def operations(self) -> list[str]:
        seen: list[str] = []
        for m in self.machines:
            for o in m.ops:
                if o.name not in seen:
                    seen.append(o.name)
        return seen

    def machine(self, name: str) -> Machine:
        for m in self.machines:
            if m.name == name:
                return m
        raise KeyError(name)

    def machines_for(self, op: str) -> list[Machine]:
        return [m for m in self.machines if m.op(op) is not None]

    def buffer_before(self, op: str) -> Buffer | None:
        return next((b for b in self.buffers if b.before == op), None)

    def inspection_at(self, machine: str) -> Inspection | None:
        return next((i for i in self.inspections if i.machine == machine), None)

    def ideal_cycle_s(self, machine: str, product: str | None) -> float:
        """The planned run time per item (ISO 22400-2 PRI) of ``machine`` for ``product``: the nameplate time of
        the operation it performs for that product (the machine's first operation for an unknown product)."""
        m = self.machine(machine)
        ops = {o.name: o for o in m.ops}
        if product is not None:
            for p in self.product_list:
                if p.name == product:
                    for step in p.routing:
                        if step in ops:
                            return ops[step].ideal_s
        return m.ops[0].ideal_s

    def source(self) -> dict:
        """The document this model was read from (shorthands kept), the base that scenarios override."""
        if self._source is not None:
            return copy.deepcopy(self._source)
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


# -- reading and checking -------------------------------------------------------------------------------------------
class _FieldError(ValueError):
    def __init__(self, field: str, msg: str):
        super().__init__(f"@{field}@ {msg}")


def _at(field: str, msg: str) -> _FieldError:
    """A ValueError naming a field below the model being validated (pydantic reports the model's own path)."""
    return _FieldError(field, msg)


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "string_pattern_mismatch": "must be a name of letters, digits and ' ._:@()-' (up to 100 characters)",
    "too_short": "must not be empty",
}


def _message(err: dict) -> tuple[str, str]:
    loc = tuple(err["loc"])
    template = _MESSAGES.get(err["type"])
    if template:
        msg = template.format(**{k: v for k, v in (err.get("ctx") or {}).items()})
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
    m = re.match(r"@([^@]+)@ (.*)", msg, re.S)
    where = _where(loc)
    if m:
        sub = m.group(1)
        where = f"{where}.{sub}" if where and not sub.startswith("[") else f"{where}{sub}"
        msg = m.group(2)
    return where or "line", msg


def validation_message(e: ValidationError, what: str) -> str:
    where, msg = _message(e.errors()[0])
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{what}: {where}: {msg}{more}"


def line_from_dict(obj: Any, what: str = "the line model") -> Line:
    """Validate a line document (a dict, as read from YAML/JSON); TwinModelError names the first bad field."""
    if not isinstance(obj, dict):
        raise TwinModelError(f"{what}: expected a mapping with name and machines")
    try:
        line = Line.model_validate(obj)
    except ValidationError as e:
        raise TwinModelError(validation_message(e, what)) from None
    problems = check_line(line)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TwinModelError(f"{what}: {problems[0]}{more}")
    line._source = copy.deepcopy(obj)
    return line


def line_errors(obj: Any) -> list[tuple[str, str]]:
    """Every problem of a line document as (path, message), in the paths :func:`line_from_dict` names (empty: the
    document is a valid line model). For callers that list them all (the service's 422 answers)."""
    if not isinstance(obj, dict):
        return [("line", "expected a mapping with name and machines")]
    try:
        line = Line.model_validate(obj)
    except ValidationError as e:
        return [_message(err) for err in e.errors()]
    out = []
    for p in check_line(line):
        where, _, msg = p.partition(": ")
        out.append((where, msg))
    return out


def check_line(line: Line) -> list[str]:
    """What a field-by-field check cannot see: names used twice, references to unknown operations or machines."""
    problems: list[str] = []

    def unique(items: list, key: str, where: str) -> None:
        seen: set = set()
        for i, it in enumerate(items):
            v = getattr(it, key)
            if v in seen:
                problems.append(f"{where}[{i}].{key}: {v!r} is used twice")
            seen.add(v)

    unique(line.machines, "name", "machines")
    unique(line.buffers, "name", "buffers")
    unique(line.products, "name", "products")
    unique(line.shifts, "name", "shifts")
    unique(line.inspections, "machine", "inspections")
    for i, m in enumerate(line.machines):
        unique(m.operations, "name", f"machines[{i}].operations")
    ops = line.operations()
    known = ", ".join(ops)
    unique(line.buffers, "before", "buffers")
    for i, b in enumerate(line.buffers):
        if b.before not in ops:
            problems.append(f"buffers[{i}].before: unknown operation {b.before!r} (operations: {known})")
    names = [m.name for m in line.machines]
    for i, ins in enumerate(line.inspections):
        if ins.machine not in names:
            problems.append(f"inspections[{i}].machine: unknown machine {ins.machine!r}")
        if ins.rework_to is not None and ins.rework_to not in ops:
            problems.append(f"inspections[{i}].rework_to: unknown operation {ins.rework_to!r} (operations: {known})")
    for i, p in enumerate(line.products):
        for k, step in enumerate(p.routing):
            if step not in ops:
                problems.append(f"products[{i}].routing[{k}]: unknown operation {step!r} (operations: {known})")
        for ins_i, ins in enumerate(line.inspections):
            if ins.rework_to is not None and ins.rework_fraction > 0 and ins.machine in names:
                inspected = [s for s in p.routing if line.machine(ins.machine).op(s) is not None]
                if inspected and ins.rework_to not in p.routing[: p.routing.index(inspected[0]) + 1]:
                    problems.append(
                        f"inspections[{ins_i}].rework_to: {ins.rework_to!r} is not on product {p.name!r}'s routing "
                        "before the inspection"
                    )
    if line.products and not sum(p.mix for p in line.products) > 0:
        problems.append("products: the mix shares add up to 0")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(line.timezone)
    except Exception:
        problems.append(f"timezone: unknown time zone {line.timezone!r} (e.g. UTC, Europe/Berlin)")
    return problems


def _read_doc(data: bytes | str, filename: str) -> Any:
    import yaml

    label = filename or "the file"
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise TwinModelError(f"{label} is over {MAX_FILE_BYTES // 1024 // 1024} MB")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TwinModelError(f"{label} is not UTF-8 text") from None
    try:
        return json.loads(data) if filename.lower().endswith(".json") else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise TwinModelError(f"{label} is not valid YAML or JSON{at}") from None
    except RecursionError:
        raise TwinModelError(f"{label} is nested too deeply to read") from None


def _read_file(path: Path) -> tuple[bytes, str]:
    path = Path(path)
    if not path.is_file():
        raise TwinModelError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise TwinModelError(f"{path} is over {MAX_FILE_BYTES // 1024 // 1024} MB")
    return path.read_bytes(), path.name


def parse_line(data: bytes | str, filename: str = "") -> Line:
    return line_from_dict(_read_doc(data, filename), filename or "the line model")


def load_line(path: str | Path) -> Line:
    """Read a line model from a YAML or JSON file."""
    data, name = _read_file(Path(path))
    return line_from_dict(_read_doc(data, name), str(path))


# -- scenarios: overrides of the model ------------------------------------------------------------------------------
KEYS = {"machines": "name", "buffers": "name", "products": "name", "shifts": "name", "inspections": "machine"}


class Scenario(BaseModel):
    """A what-if: a name and overrides of the line document."""

    model_config = ConfigDict(frozen=True)
    name: str
    changes: dict


def _merge_list(base: list, over: list, key: str, where: str) -> list:
    out = [copy.deepcopy(x) for x in base]
    for i, entry in enumerate(over):
        if not isinstance(entry, dict) or key not in entry:
            raise TwinModelError(f"{where}[{i}]: each entry needs its {key}")
        entry = dict(entry)
        k = entry[key]
        at = next((j for j, x in enumerate(out) if isinstance(x, dict) and x.get(key) == k), None)
        if entry.pop("remove", False):
            if at is None:
                raise TwinModelError(f"{where}[{i}]: cannot remove {k!r}: there is none")
            out.pop(at)
            continue
        like = entry.pop("like", None)
        if at is not None:
            if like is not None:
                raise TwinModelError(f"{where}[{i}].like: {k!r} exists already; like is for new entries")
            out[at] = {**out[at], **entry}
        elif like is not None:
            src = next((x for x in out if isinstance(x, dict) and x.get(key) == like), None)
            if src is None:
                raise TwinModelError(f"{where}[{i}].like: unknown {like!r}")
            out.append({**copy.deepcopy(src), **entry})
        else:
            out.append(entry)
    return out


def apply_scenario(line: Line, scenario: Scenario) -> Line:
    """The line with the scenario's overrides applied, validated as a whole (errors name the scenario)."""
    doc = line.source()
    changes = dict(scenario.changes)
    what = f"scenario {scenario.name!r}"
    mix = changes.pop("mix", None)
    for field, value in changes.items():
        if field in KEYS:
            if not isinstance(value, list):
                raise TwinModelError(f"{what}: {field}: expected a list of changes")
            base = doc.get(field) or []
            if field == "products" and not base:
                base = [p.model_dump(mode="json") for p in line.product_list]
            doc[field] = _merge_list(base, value, KEYS[field], f"{what}: {field}")
        elif field in Line.model_fields:
            doc[field] = value
        else:
            raise TwinModelError(f"{what}: {field}: unknown field")
    if mix is not None:
        if not isinstance(mix, dict):
            raise TwinModelError(f"{what}: mix: expected a mapping of product to share")
        prods = doc.get("products") or [p.model_dump(mode="json") for p in line.product_list]
        names = [p.get("name") for p in prods]
        for k, v in mix.items():
            if k not in names:
                raise TwinModelError(f"{what}: mix.{k}: unknown product (products: {', '.join(map(str, names))})")
            prods[names.index(k)]["mix"] = v
        doc["products"] = prods
    return line_from_dict(doc, what)


def scenario_from_dict(obj: Any, what: str = "the scenario") -> Scenario:
    if not isinstance(obj, dict):
        raise TwinModelError(f"{what}: expected a mapping with a name and the fields it changes")
    obj = dict(obj)
    name = obj.pop("name", None)
    obj.pop("description", None)
    if not isinstance(name, str) or not name:
        raise TwinModelError(f"{what}: name: is required")
    return Scenario(name=name, changes=obj)


def load_scenario(path: str | Path) -> Scenario:
    data, name = _read_file(Path(path))
    return scenario_from_dict(_read_doc(data, name), str(path))
