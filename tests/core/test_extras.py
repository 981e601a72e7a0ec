"""With only ``pip install linewatch`` (numpy, Pillow, Typer, Rich), every command that needs an extra says which
one to install and exits 2, instead of a ModuleNotFoundError. Runs the real CLI in a fresh virtualenv."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
BASE = ["numpy", "pillow", "typer", "rich"]


@pytest.fixture(scope="module")
def base_python(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("base-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([py, "-m", "pip", "install", "-q", *BASE], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"cannot install the base dependencies from the package index: {r.stderr.strip()[-300:]}")
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    (Path(purelib) / "linewatch-src.pth").write_text(str(SRC) + "\n")  # the project's code, none of its extras
    assert sysconfig.get_paths()["purelib"] != purelib
    return py


def _run(py: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([py, "-m", "linewatch.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_base_install_has_no_extras(base_python):
    r = subprocess.run([base_python, "-c", "import torch"], capture_output=True, text=True)
    assert r.returncode != 0


def test_help_works_without_extras(base_python, tmp_path):
    r = _run(base_python, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "serve" in r.stdout
    r = _run(base_python, "train", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--bank-size" in r.stdout


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["train", "data", "--out", "m"], "vision"),
        (["evaluate", "m", "data"], "vision"),
        (["export", "m"], "vision"),
        (["demo"], "vision"),
        (["search", "index", "data", "--model", "m", "--out", "i"], "vision"),
        (["serve"], "service"),
        (["worker"], "service"),
        (["users", "create", "admin"], "service"),
        (["inspect", "--server", "http://127.0.0.1:9", "--api-key", "k", "x.png"], "client"),
        (["schedule", "solve", "instance.txt"], "scheduling"),
        (["schedule", "replan", "plan.json", "event.json"], "scheduling"),
        (["twin", "validate", "line.yaml"], "twin"),
        (["twin", "simulate", "line.yaml"], "twin"),
        (["twin", "oee", "events.csv"], "twin"),
        (["registry", "list", "--tracking-uri", "sqlite:///r.db"], "registry"),
        (["batch", "m", ".", "-o", "r.jsonl", "--ray", "local"], "batch"),
        (["registry", "pull", "m@production", "-o", "m", "--tracking-uri", "sqlite:///r.db"], "registry"),
    ],
)
def test_command_names_the_missing_extra(base_python, tmp_path, args, extra):
    r = subprocess.run(
        [base_python, "-m", "linewatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        input="secret\n",
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f'pip install "linewatch[{extra}]"' in r.stderr
    assert "Traceback" not in r.stderr and "ModuleNotFoundError" not in r.stderr
