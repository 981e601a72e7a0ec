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


def test_a_machine_listed_twice_in_one_file_is_refused(tmp_path, linewatch_processes):
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "lines:\n  - name: a\n    machines:\n      - name: press\n  - name: b\n    machines:\n      - name: press\n"
    )
    data = tmp_path / "data"
    got = linewatch_processes.cli("machines", "import", str(twice), "--data-dir", str(data))
    assert got.returncode == 2 and "lines[1].machines[0]: machine 'press' is listed twice" in got.stderr, got.stderr
    assert "(also at lines[0].machines[0])" in got.stderr and len(got.stderr.strip().splitlines()) == 1
    listed = linewatch_processes.cli("machines", "list", "--data-dir", str(data))
    assert listed.returncode == 0 and "press" not in listed.stdout  # nothing of the file was imported


def test_a_database_that_cannot_be_used_is_one_line(tmp_path, linewatch_processes):
    data = tmp_path / "data"
    data.mkdir()
    (data / "linewatch.db").write_bytes(bytes(range(256)) * 20)  # not SQLite
    cases = [
        ({}, "cannot be used: file is not a database"),
        ({"LINEWATCH_DATABASE_URL": "notaurl"}, "the database URL 'notaurl' cannot be used"),
        ({"LINEWATCH_DATABASE_URL": "mysql://u:secret@db/x"}, "the database URL mysql://... cannot be used"),
    ]
    for settings, says in cases:
        env = linewatch_processes.env(**settings)
        got = linewatch_processes.cli("machines", "list", "--data-dir", str(data), env=env)
        assert got.returncode == 2 and says in got.stderr, got.stderr
        assert "secret" not in got.stderr and len(got.stderr.strip().splitlines()) == 1


def test_user_names_are_checked_on_the_command_line_as_in_the_api(tmp_path, linewatch_processes):
    data = str(tmp_path / "data")
    for name in ["", "   ", "bad/name", "a\nb", "x" * 101]:
        got = linewatch_processes.cli(
            "users", "create", name, "--role", "viewer", "--password-stdin", "--data-dir", data, stdin="password1\n"
        )
        assert got.returncode == 2 and "must be 1 to 100 letters, digits" in got.stderr, (name, got.stderr)
    ok = linewatch_processes.cli(
        "users", "create", "qa.lead@plant-2", "--role", "viewer", "--password-stdin", "--data-dir", data,
        stdin="password1\n",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_a_model_fitted_with_the_sensors_command_is_imported_for_a_machine(tmp_path):
    """`linewatch sensors fit` then `linewatch machines import-model`: the machine's next version, ready; a model of
    sensors the machine lacks, or a folder that is no model, is one line and exit 2, and leaves no version."""
    import numpy as np
    from typer.testing import CliRunner

    from linewatch.cli import app

    runner = CliRunner()
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        "lines:\n  - name: line-1\n    machines:\n      - name: press-1\n        type: press\n"
        "        sensors:\n          - {name: oil_temp}\n          - {name: pressure}\n"
    )
    data = str(tmp_path / "data")
    assert runner.invoke(app, ["machines", "import", str(plant), "--data-dir", data]).exit_code == 0
    rng = np.random.default_rng(0)
    csv = tmp_path / "normal.csv"
    rows = [f"{i},{70 + rng.normal():.3f},{3 + rng.normal(0, 0.05):.4f},{rng.normal():.3f}" for i in range(600)]
    csv.write_text("time,oil_temp,pressure,spindle\n" + "\n".join(rows) + "\n")
    fit = ["sensors", "fit", str(csv), "--method", "pca"]
    assert runner.invoke(app, [*fit, "--columns", "oil_temp,pressure", "--out", str(tmp_path / "m")]).exit_code == 0
    assert runner.invoke(app, [*fit, "--out", str(tmp_path / "all")]).exit_code == 0

    got = runner.invoke(app, ["machines", "import-model", "press-1", str(tmp_path / "all"), "--data-dir", data])
    assert got.exit_code == 2 and "does not have: spindle" in " ".join(got.stderr.split()), got.stderr
    got = runner.invoke(app, ["machines", "import-model", "press-1", str(tmp_path), "--data-dir", data])
    assert got.exit_code == 2 and "is not a model folder" in " ".join(got.stderr.split())
    got = runner.invoke(app, ["machines", "import-model", "press-1", str(tmp_path / "m"), "--data-dir", data])
    assert got.exit_code == 0, got.stderr
    assert "press-1: version 1 (model #1, pca over oil_temp, pressure) is ready" in " ".join(got.stdout.split())
