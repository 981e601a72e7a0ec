"""Asset Administration Shell export (IEC 63278, the Industry 4.0 digital-twin format) with basyx-python-sdk.

One shell per machine (asset kind instance, the machine's type as asset type) with two submodels: ``TechnicalData``
from the line model (operations with their cycle times, failure modes, input buffers, inspection station and defect
rate) and ``OperationalData`` from live properties the caller passes (state, cause, since, product, health, counts,
anything scalar); and one shell for the line with a ``LineStructure`` submodel (machines, buffers, products and their
routings). Names become idShorts (letters, digits, ``_``; the real name is kept as a property and display name).
Identifiers are URNs under ``base_id``. Other plant systems read the JSON with any AAS v3 implementation."""

from __future__ import annotations

import io
import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from linewatch.twin.model import Line


def id_short(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s[:1].isalpha() else f"x{s}"


def _prop(name: str, value: Any):
    from basyx.aas import model

    if isinstance(value, bool):
        return model.Property(id_short(name), model.datatypes.Boolean, value)
    if isinstance(value, int):
        return model.Property(id_short(name), model.datatypes.Long, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return model.Property(id_short(name), model.datatypes.Double, None)
        return model.Property(id_short(name), model.datatypes.Double, value)
    if isinstance(value, datetime):
        return model.Property(id_short(name), model.datatypes.DateTime, value)
    return model.Property(id_short(name), model.datatypes.String, None if value is None else str(value))


def _collection(name: str, items: list):
    from basyx.aas import model

    return model.SubmodelElementCollection(id_short(name), items)


def _urn(base_id: str, *parts: str) -> str:
    return ":".join([base_id, *(quote(p, safe="") for p in parts)])


def _live_value(key: str, value: Any) -> Any:
    if key in ("since", "time", "last_time") and isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return value


def build_store(line: Line, live: dict[str, Any] | None = None, base_id: str = "urn:linewatch"):
    """The shells and submodels as a basyx ``DictIdentifiableStore``.

    ``live``: machine name -> a mapping of properties (or an object with ``to_json()``, e.g. a
    :class:`~linewatch.twin.events.MachineStatus`), such as ``{"state": "down", "cause": "jam", "health": 0.7,
    "good": 1200}``; times since the epoch under ``since``/``time`` become xs:dateTime."""
    from basyx.aas import model

    store = model.DictIdentifiableStore()
    live = live or {}
    unknown = sorted(set(live) - {m.name for m in line.machines})
    if unknown:
        raise ValueError(f"live properties for unknown machine {unknown[0]!r}")
    for m in line.machines:
        tech_items = [
            _prop("Name", m.name),
            _prop("Type", m.type),
            _prop("Line", line.name),
            _collection(
                "Operations",
                [
                    _collection(
                        o.name,
                        [
                            _prop("Name", o.name),
                            _prop("CycleTime_s", float(o.cycle_time_s.mean_value)),
                            _prop("CycleTimeDistribution", o.cycle_time_s.describe()),
                            _prop("IdealCycleTime_s", float(o.ideal_s)),
                        ],
                    )
                    for o in m.ops
                ],
            ),
            _collection(
                "FailureModes",
                [
                    _collection(
                        f"mode{i}",
                        [
                            _prop("Cause", f.cause),
                            _prop("MTBF_h", float(f.ttf_s.mean_value / 3600)),
                            _prop("MTTR_min", float(f.ttr_s.mean_value / 60)),
                        ],
                    )
                    for i, f in enumerate(m.failures)
                ],
            ),
        ]
        bufs = [line.buffer_before(o.name) for o in m.ops]
        tech_items.append(
            _collection(
                "InputBuffers",
                [
                    _collection(b.name, [_prop("Name", b.name), _prop("Capacity", b.capacity)])
                    for b in bufs
                    if b is not None
                ],
            )
        )
        ins = line.inspection_at(m.name)
        if ins is not None:
            tech_items.append(
                _collection(
                    "Inspection",
                    [
                        _prop("Station", ins.station),
                        _prop("DefectRate", float(ins.defect_rate)),
                        _prop("ReworkFraction", float(ins.rework_fraction)),
                        _prop("ReworkTo", ins.rework_to),
                    ],
                )
            )
        tech = model.Submodel(
            _urn(base_id, "line", line.name, "machine", m.name, "technical"), tech_items, id_short="TechnicalData"
        )
        values = live.get(m.name) or {}
        if hasattr(values, "to_json"):
            values = values.to_json()
        op_items = [_prop(k, _live_value(k, v)) for k, v in values.items() if k != "machine" and _scalar(v)]
        oper = model.Submodel(
            _urn(base_id, "line", line.name, "machine", m.name, "operational"), op_items, id_short="OperationalData"
        )
        shell = model.AssetAdministrationShell(
            model.AssetInformation(
                asset_kind=model.AssetKind.INSTANCE,
                global_asset_id=_urn(base_id, "asset", line.name, m.name),
                asset_type=m.type or None,
            ),
            _urn(base_id, "line", line.name, "machine", m.name),
            id_short=id_short(m.name),
            display_name=model.MultiLanguageNameType({"en": m.name}),
            submodel={model.ModelReference.from_referable(tech), model.ModelReference.from_referable(oper)},
        )
        store.add(tech)
        store.add(oper)
        store.add(shell)
    structure = model.Submodel(
        _urn(base_id, "line", line.name, "structure"),
        [
            _prop("Name", line.name),
            _collection("Machines", [_prop(m.name, m.name) for m in line.machines]),
            _collection(
                "Buffers",
                [
                    _collection(
                        b.name, [_prop("Name", b.name), _prop("Before", b.before), _prop("Capacity", b.capacity)]
                    )
                    for b in line.buffers
                ],
            ),
            _collection(
                "Products",
                [
                    _collection(
                        p.name,
                        [_prop("Name", p.name), _prop("Mix", float(p.mix)), _prop("Routing", " > ".join(p.routing))],
                    )
                    for p in line.product_list
                ],
            ),
        ],
        id_short="LineStructure",
    )
    store.add(structure)
    store.add(
        model.AssetAdministrationShell(
            model.AssetInformation(
                asset_kind=model.AssetKind.INSTANCE, global_asset_id=_urn(base_id, "asset", line.name)
            ),
            _urn(base_id, "line", line.name),
            id_short=id_short(line.name),
            display_name=model.MultiLanguageNameType({"en": line.name}),
            submodel={model.ModelReference.from_referable(structure)},
        )
    )
    return store


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str | datetime)


def export_aas(line: Line, live: dict[str, Any] | None = None, base_id: str = "urn:linewatch") -> str:
    """The AAS JSON (an environment with ``assetAdministrationShells`` and ``submodels``) as text."""
    from basyx.aas.adapter.json import write_aas_json_file

    buf = io.StringIO()
    write_aas_json_file(buf, build_store(line, live, base_id))
    return buf.getvalue()
