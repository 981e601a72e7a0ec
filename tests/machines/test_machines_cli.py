"""`linewatch machines import` and `list`: a definition file into the service's database, bad fields named."""

from __future__ import annotations


def test_import_then_list(tmp_path, linewatch_processes):
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        "lines:\n  - name: line-1\n    machines:\n      - name: press-1\n        type: press\n"
        "        sensors:\n          - {name: oil_temp, unit: degC, low: 20, high: 90}\n          - {name: pressure}\n"
    )
    data = tmp_path / "data"
    got = linewatch_processes.cli("machines", "import", str(plant), "--data-dir", str(data))
    assert got.returncode == 0, got.stderr
    assert "1 machines created, 0 updated" in got.stderr
    again = linewatch_processes.cli("machines", "import", str(plant), "--data-dir", str(data))
    assert "0 machines created, 1 updated" in again.stderr
    listed = linewatch_processes.cli("machines", "list", "--data-dir", str(data))
    assert "press-1" in listed.stdout and "oil_temp, pressure" in listed.stdout


def test_bad_files_exit_2_with_one_line(tmp_path, linewatch_processes):
    data = str(tmp_path / "data")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lines:\n  - name: l\n    machines:\n      - name: m\n        sensors: [{name: t, high: warm}]\n")
    got = linewatch_processes.cli("machines", "import", str(bad), "--data-dir", data)
    assert got.returncode == 2 and "lines[0].machines[0].sensors[0].high" in got.stderr
    assert "Traceback" not in got.stderr and len(got.stderr.strip().splitlines()) == 1
    missing = linewatch_processes.cli("machines", "import", str(tmp_path / "nope.yaml"), "--data-dir", data)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unknown = tmp_path / "x.json"
    unknown.write_text('{"machines": [{"name": "m", "sensors": []}]}')
    got = linewatch_processes.cli("machines", "import", str(unknown), "--data-dir", data)
    assert got.returncode == 2 and "machines[0].line" in got.stderr
