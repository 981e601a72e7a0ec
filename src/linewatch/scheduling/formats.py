"""Instance files: the standard job-shop text formats (JSPLIB/OR-Library, and Taillard's own) and our JSON.

JSPLIB: optional ``#`` comment lines, ``jobs machines``, then per job its ``machine duration`` pairs in order,
machines from 0. Taillard's format: a header line of numbers (jobs, machines, seeds, bounds), a ``Times`` block (one
row per job) and a ``Machines`` block (machines from 1).

Our JSON (``format: linewatch-jobshop``) adds what the text formats cannot say::

    {"format": "linewatch-jobshop", "format_version": 1, "name": "cell-3",
     "machines": ["saw", "mill", "drill"],              # or a count: 3
     "jobs": [{"name": "A", "release": 0, "due": 40, "weight": 2,
               "operations": [{"machine": "saw", "duration": 5},
                              {"options": [{"machine": "mill", "duration": 4}, {"machine": 2, "duration": 6}]}]}],
     "unavailable": [{"machine": "mill", "start": 10, "end": 20}],   # "end": null = down indefinitely
     "setups": {"saw": [[0, 3], [2, 0]]}}                            # jobs x jobs, on that machine

Machines are named or numbered from 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from linewatch.scheduling.model import Instance, InstanceError, Job, Operation, Option, Window

JSON_FORMAT = "linewatch-jobshop"
JSON_VERSION = 1


def load_instance(path: str | Path) -> Instance:
    """An instance from a file in any supported format, validated; InstanceError says what is wrong."""
    p = Path(path)
    if not p.exists():
        raise InstanceError(f"instance file {p} does not exist")
    if p.is_dir():
        raise InstanceError(f"{p} is a folder, not an instance file")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InstanceError(f"cannot read instance file {p}: {e}") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InstanceError(f"{p} is not valid JSON: {e}") from None
        except RecursionError:
            raise InstanceError(f"{p} is nested too deeply to read") from None
        inst = instance_from_json(doc, where=str(p))
    elif any(line.strip().lower() == "times" for line in text.splitlines()):
        inst = parse_taillard(text, where=str(p))
    else:
        inst = parse_jsplib(text, where=str(p))
    if not inst.name:
        inst.name = p.stem if p.suffix == ".json" else p.name
    return inst.validate()


def _ints(line: str, where: str, lineno: int) -> list[int]:
    try:
        return [int(x) for x in line.split()]
    except ValueError:
        raise InstanceError(f"{where} line {lineno}: expected whole numbers, got {line.strip()[:60]!r}") from None


def parse_jsplib(text: str, where: str = "instance") -> Instance:
    rows = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip() and line.lstrip()[0] != "#"]
    if not rows:
        raise InstanceError(f"{where} is empty: expected 'jobs machines' and one line per job")
    head = _ints(rows[0][1], where, rows[0][0])
    if len(head) < 2 or head[0] < 1 or head[1] < 1:
        raise InstanceError(f"{where} line {rows[0][0]}: expected 'jobs machines' (two positive numbers)")
    n, m = head[0], head[1]
    if len(rows) - 1 < n:
        raise InstanceError(f"{where} announces {n} jobs but has {len(rows) - 1} job lines")
    jobs = []
    for j in range(n):
        lineno, line = rows[1 + j]
        v = _ints(line, where, lineno)
        if len(v) != 2 * m:
            raise InstanceError(
                f"{where} line {lineno}: job {j} needs {m} machine/duration pairs, has {len(v)} numbers"
            )
        jobs.append(Job([Operation([Option(v[2 * k], v[2 * k + 1])]) for k in range(m)]))
    return Instance(jobs, m)


def parse_taillard(text: str, where: str = "instance") -> Instance:
    lines = [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]
    labels = [line.lower() for _, line in lines]
    try:
        t_at, m_at = labels.index("times"), labels.index("machines")
    except ValueError:
        raise InstanceError(f"{where}: a Taillard file needs a 'Times' and a 'Machines' block") from None
    numbers = [ln for ln in lines[:t_at] if ln[1][0].isdigit()]
    if not numbers:
        raise InstanceError(f"{where}: no 'jobs machines ...' header line before 'Times'")
    head = _ints(numbers[-1][1], where, numbers[-1][0])
    if len(head) < 2:
        raise InstanceError(f"{where} line {numbers[-1][0]}: expected jobs and machines first")
    n, m = head[0], head[1]
    times = [_ints(line, where, i) for i, line in lines[t_at + 1 : t_at + 1 + n]]
    machines = [_ints(line, where, i) for i, line in lines[m_at + 1 : m_at + 1 + n]]
    if len(times) != n or len(machines) != n or any(len(r) != m for r in times + machines):
        raise InstanceError(f"{where}: 'Times' and 'Machines' need {n} rows of {m} numbers each")
    jobs = [Job([Operation([Option(machines[j][k] - 1, times[j][k])]) for k in range(m)]) for j in range(n)]
    return Instance(jobs, m)


def _field(obj: dict, key: str, kind: type | tuple, where: str, default: Any = ...) -> Any:
    if key not in obj:
        if default is ...:
            raise InstanceError(f"{where}: missing {key!r}")
        return default
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, kind):
        raise InstanceError(f"{where}: {key!r} has the wrong type ({type(v).__name__})")
    return v


def instance_from_json(doc: Any, where: str = "instance") -> Instance:
    """Our JSON document as an Instance (not yet validated)."""
    if not isinstance(doc, dict):
        raise InstanceError(f"{where}: expected a JSON object with 'machines' and 'jobs'")
    fmt = doc.get("format", JSON_FORMAT)
    if fmt != JSON_FORMAT:
        raise InstanceError(f"{where}: format {fmt!r} is not {JSON_FORMAT!r}")
    version = doc.get("format_version", JSON_VERSION)
    if not isinstance(version, int) or version > JSON_VERSION:
        raise InstanceError(f"{where}: format_version {version} is newer than this linewatch reads ({JSON_VERSION})")
    machines = _field(doc, "machines", (int, list), where)
    names = [str(x) for x in machines] if isinstance(machines, list) else None
    m = len(names) if names is not None else machines

    def machine(v: Any, ctx: str) -> int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and names and v in names:
            return names.index(v)
        raise InstanceError(f"{where}: {ctx} names unknown machine {v!r}")

    jobs = []
    for j, jd in enumerate(_field(doc, "jobs", list, where)):
        ctx = f"job {j}"
        if not isinstance(jd, dict):
            raise InstanceError(f"{where}: {ctx} is not an object")
        ops = []
        for k, od in enumerate(_field(jd, "operations", list, f"{where} {ctx}")):
            octx = f"{ctx} operation {k}"
            if not isinstance(od, dict):
                raise InstanceError(f"{where}: {octx} is not an object")
            raw = od.get("options", [od])
            if not isinstance(raw, list):
                raise InstanceError(f"{where}: {octx} 'options' must be a list")
            opts = []
            for o in raw:
                if not isinstance(o, dict) or "machine" not in o:
                    raise InstanceError(f"{where}: {octx} needs a machine and a duration")
                opts.append(Option(machine(o["machine"], octx), _field(o, "duration", int, f"{where} {octx}")))
            ops.append(Operation(opts))
        jobs.append(
            Job(
                ops,
                name=str(jd.get("name", "")),
                release=_field(jd, "release", int, f"{where} {ctx}", 0),
                due=_field(jd, "due", int, f"{where} {ctx}", None) if jd.get("due") is not None else None,
                weight=float(_field(jd, "weight", (int, float), f"{where} {ctx}", 1.0)),
            )
        )
    windows = []
    for i, wd in enumerate(_field(doc, "unavailable", list, where, [])):
        if not isinstance(wd, dict) or "machine" not in wd:
            raise InstanceError(f"{where}: unavailability window {i} needs machine, start (and end)")
        end = wd.get("end")
        if end is not None and (isinstance(end, bool) or not isinstance(end, int)):
            raise InstanceError(f"{where}: unavailability window {i} 'end' must be a whole number or null")
        windows.append(
            Window(machine(wd["machine"], f"window {i}"), _field(wd, "start", int, f"{where} window {i}"), end)
        )
    setups = {}
    for key, table in _field(doc, "setups", dict, where, {}).items():
        mach = machine(int(key) if key.isdigit() else key, "setups")
        if not isinstance(table, list) or not all(isinstance(r, list) for r in table):
            raise InstanceError(f"{where}: setups for machine {key} must be a jobs x jobs table")
        try:
            setups[mach] = [[int(v) for v in r] for r in table]
        except (TypeError, ValueError, OverflowError):  # text, null, infinity
            raise InstanceError(f"{where}: setups for machine {key} must hold whole numbers") from None
    return Instance(jobs, m, name=str(doc.get("name", "")), machine_names=names, unavailable=windows, setups=setups)


def instance_to_json(inst: Instance) -> dict:
    """Our JSON document for an instance (machines by number; names kept in 'machines' when present)."""

    def op(o: Operation) -> dict:
        if len(o.options) == 1:
            return {"machine": o.options[0].machine, "duration": o.options[0].duration}
        return {"options": [{"machine": x.machine, "duration": x.duration} for x in o.options]}

    doc: dict[str, Any] = {
        "format": JSON_FORMAT,
        "format_version": JSON_VERSION,
        "name": inst.name,
        "machines": list(inst.machine_names) if inst.machine_names else inst.n_machines,
        "jobs": [],
    }
    for job in inst.jobs:
        jd: dict[str, Any] = {"operations": [op(o) for o in job.operations]}
        if job.name:
            jd["name"] = job.name
        if job.release:
            jd["release"] = job.release
        if job.due is not None:
            jd["due"] = job.due
        if job.weight != 1.0:
            jd["weight"] = job.weight
        doc["jobs"].append(jd)
    if inst.unavailable:
        doc["unavailable"] = [{"machine": w.machine, "start": w.start, "end": w.end} for w in inst.unavailable]
    if inst.setups:
        doc["setups"] = {str(k): v for k, v in inst.setups.items()}
    return doc
