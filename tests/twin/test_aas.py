"""AAS export round-trips through basyx's own JSON deserialiser (strict: a malformed element is an error)."""

from __future__ import annotations

import io
import json
from importlib.resources import files

import pytest

pytest.importorskip("basyx.aas")

from basyx.aas import model  # noqa: E402
from basyx.aas.adapter.json import read_aas_json_file  # noqa: E402

from linewatch.twin.aas import export_aas  # noqa: E402
from linewatch.twin.events import MachineStatus  # noqa: E402
from linewatch.twin.model import load_line  # noqa: E402


def test_round_trip_through_basyx():
    line = load_line(str(files("linewatch.twin") / "examples" / "bottling.yaml"))
    live = {
        "filler": MachineStatus("filler", "down", 1709539200.0, "valve jam", "cola", good=1200, defective=3),
        "capper": {"state": "running", "health": 0.82, "rul_h": 140.5, "good": 1190},
    }
    text = export_aas(line, live)
    doc = json.loads(text)
    assert len(doc["assetAdministrationShells"]) == 7 and len(doc["submodels"]) == 13
    store = read_aas_json_file(io.StringIO(text), failsafe=False)
    shell = store.get_item("urn:linewatch:line:bottling:machine:filler")
    assert isinstance(shell, model.AssetAdministrationShell) and shell.asset_information.asset_type == "rotary filler"
    oper = store.get_item("urn:linewatch:line:bottling:machine:filler:operational")
    values = {e.id_short: e.value for e in oper.submodel_element}
    assert values["state"] == "down" and values["cause"] == "valve jam" and values["good"] == 1200
    assert values["since"].year == 2024
    cap = store.get_item("urn:linewatch:line:bottling:machine:capper:operational")
    assert {e.id_short: e.value for e in cap.submodel_element}["health"] == 0.82
    tech = store.get_item("urn:linewatch:line:bottling:machine:inspector:technical")
    ins = tech.get_referable("Inspection")
    assert {e.id_short: e.value for e in ins.value}["Station"] == "bottle-camera"
    ops = store.get_item("urn:linewatch:line:bottling:machine:filler:technical").get_referable("Operations")
    assert sorted(o.id_short for o in ops.value) == ["fill_cola", "fill_water"]
    # a machine with a space in its name gets a valid idShort and an escaped identifier
    from linewatch.twin.model import Scenario, apply_scenario

    two = apply_scenario(line, Scenario(name="s", changes={"machines": [{"name": "capper 2", "like": "capper"}]}))
    store = read_aas_json_file(io.StringIO(export_aas(two)), failsafe=False)
    assert store.get_item("urn:linewatch:line:bottling:machine:capper%202").id_short == "capper_2"


def test_unknown_machine_in_live_properties():
    line = load_line(str(files("linewatch.twin") / "examples" / "bottling.yaml"))
    with pytest.raises(ValueError, match="unknown machine 'mixer'"):
        export_aas(line, {"mixer": {"state": "running"}})
