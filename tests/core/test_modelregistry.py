"""An MLflow Model Registry for every engine's models (``linewatch registry``), on a registry database file in the
test's folder: what is pushed comes back whole and loads; damaged files never reach it nor leave it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("mlflow")

from linewatch.core import modelregistry as registry  # noqa: E402
from linewatch.errors import LinewatchError, ModelFileError  # noqa: E402


@pytest.fixture
def uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'registry' / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _no_registry_from_the_environment(monkeypatch, tmp_path):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "registry").mkdir()
    monkeypatch.chdir(tmp_path)  # MLflow writes nothing where the tests run from


@pytest.fixture(scope="module")
def sensor_model(tmp_path_factory):
    """A small sensor model (another engine than vision, with a threshold)."""
    from linewatch.sensors.methods import METHODS
    from linewatch.sensors.saving import save

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (300, 3))
    det = METHODS.create("mahalanobis").fit(x, sensors=["a", "b", "c"])
    return save(det, tmp_path_factory.mktemp("sensors") / "pump"), x


def test_a_pushed_model_comes_back_whole_by_version_alias_or_newest(trained, sensor_model, uri, tmp_path):
    from linewatch.sensors.saving import load as load_sensors
    from linewatch.vision.saving import load as load_vision

    _, vision_dir = trained
    pump_dir, rows = sensor_model
    first = registry.push(vision_dir, "washer", uri, alias="production")
    assert (first.name, first.version, first.alias, first.engine) == ("washer", 1, "production", "vision")
    second = registry.push(vision_dir, "washer", uri, description="retrained")
    assert second.version == 2 and second.run_id != first.run_id
    pump = registry.push(pump_dir, "pump", uri)
    assert pump.engine == "sensors" and pump.metrics["threshold"] == pytest.approx(
        json.loads((pump_dir / "manifest.json").read_text())["threshold"]
    )
    assert not (tmp_path / "mlruns").exists()  # a database file's artifacts go beside it, not where one stands
    assert (tmp_path / "registry" / "mlartifacts").is_dir()

    got = registry.pull("washer@production", tmp_path / "prod", uri)
    assert (got.version, got.aliases, got.engine) == (1, ["production"], "vision")
    assert registry.pull("washer", tmp_path / "newest", uri).version == 2
    assert registry.pull("washer/1", tmp_path / "one", uri).version == 1
    for name in ("prod", "newest", "one"):
        for f in vision_dir.iterdir():
            assert (tmp_path / name / f.name).read_bytes() == f.read_bytes()
    det = load_vision(tmp_path / "prod")  # the engine's own loader takes it, integrity checks and all
    assert det.calibration_ is not None
    registry.pull("pump", tmp_path / "pump", uri)
    again = load_sensors(tmp_path / "pump")
    assert np.array_equal(again.score(rows), load_sensors(pump_dir).score(rows))

    listed = registry.versions("washer", uri)
    assert [(v["version"], v["aliases"], v["engine"]) for v in listed] == [
        (2, [], "vision"),
        (1, ["production"], "vision"),
    ]
    assert {v["name"] for v in registry.versions(None, uri)} == {"washer", "pump"}


def test_a_damaged_model_never_enters_nor_leaves_the_registry(trained, uri, tmp_path):
    _, vision_dir = trained
    damaged = tmp_path / "damaged"
    shutil.copytree(vision_dir, damaged)
    weights = next(p for p in damaged.iterdir() if p.name != "manifest.json")
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelFileError, match="sha256 differs"):
        registry.push(damaged, "washer", uri)
    with pytest.raises(LinewatchError, match="no model 'washer'"):
        registry.versions("washer", uri)

    registry.push(vision_dir, "washer", uri)
    registry.pull("washer", tmp_path / "good", uri)
    before = {p.name: p.read_bytes() for p in (tmp_path / "good").iterdir()}
    stored = next((tmp_path / "registry" / "mlartifacts").rglob(weights.name))
    stored.write_bytes(stored.read_bytes()[:-8] + b"\0" * 8)  # the registry's copy damaged
    with pytest.raises(ModelFileError, match="damaged"):
        registry.pull("washer", tmp_path / "good", uri)
    assert {p.name: p.read_bytes() for p in (tmp_path / "good").iterdir()} == before  # the earlier pull is whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".good")]  # no half-written folder left


def test_what_the_registry_refuses_is_said_in_one_line(trained, uri, tmp_path):
    _, vision_dir = trained
    with pytest.raises(LinewatchError, match="MLFLOW_TRACKING_URI"):
        registry.push(vision_dir, "washer")
    with pytest.raises(LinewatchError, match="cannot be an MLflow registry"):
        registry.versions(None, "bogus://somewhere")
    with pytest.raises(LinewatchError, match="no '/' or '@'"):
        registry.push(vision_dir, "washer@prod", uri)
    with pytest.raises(LinewatchError, match="alias is a letter"):
        registry.push(vision_dir, "washer", uri, alias="1st place")
    with pytest.raises(ModelFileError, match="model not found"):
        registry.push(tmp_path / "nowhere", "washer", uri)
    registry.push(vision_dir, "washer", uri)
    with pytest.raises(LinewatchError, match="no alias 'production'"):
        registry.pull("washer@production", tmp_path / "x", uri)
    with pytest.raises(LinewatchError, match="no version 7"):
        registry.pull("washer/7", tmp_path / "x", uri)
    with pytest.raises(LinewatchError, match="NAME@ALIAS"):
        registry.pull("washer@", tmp_path / "x", uri)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "part.png").write_bytes(b"a user's photo")
    with pytest.raises(ModelFileError):
        registry.pull("washer", photos, uri)  # a folder of other things is never replaced
    assert [p.name for p in photos.iterdir()] == ["part.png"]


def test_the_command_line_pushes_lists_and_pulls(cli_here, trained, uri, tmp_path):
    _, vision_dir = trained
    r = cli_here(
        "registry", "push", str(vision_dir), "--name", "washer", "--alias", "production", "--tracking-uri", uri
    )
    assert r.exit_code == 0, r.output
    assert "registered washer version 1 (vision" in r.stderr and "alias production" in r.stderr
    r = cli_here("registry", "list", "--tracking-uri", uri, "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["name"], x["version"], x["aliases"]) for x in rows] == [("washer", 1, ["production"])]
    r = cli_here("registry", "list", "washer", "--tracking-uri", uri)
    assert r.exit_code == 0 and "production" in r.stdout
    r = cli_here("registry", "pull", "washer@production", "-o", str(tmp_path / "m"), "--tracking-uri", uri)
    assert r.exit_code == 0, r.output
    assert "pulled washer version 1 (production)" in r.stderr and (tmp_path / "m" / "manifest.json").is_file()
    r = cli_here("registry", "pull", "washer@staging", "-o", str(tmp_path / "m2"), "--tracking-uri", uri)
    assert r.exit_code == 2 and "no alias 'staging'" in r.stderr and "Traceback" not in r.output
    r = cli_here("registry", "list")
    assert r.exit_code == 2 and "MLFLOW_TRACKING_URI" in r.stderr


def test_pushing_needs_only_the_manifest_of_the_model_not_its_engine(tmp_path, uri):
    """A model of an engine pushed by a registry installation without that engine: files and manifest are enough."""
    folder = tmp_path / "plan"
    folder.mkdir()
    data = folder / "weights.npy"
    np.save(data, np.arange(4.0), allow_pickle=False)
    from linewatch.core.modelfiles import add_file_entry

    manifest = {
        "engine": "maintenance",
        "format_version": 1,
        "method": "cnn",
        "metrics": {"rmse": 11.1, "per": {"x": 1}},
    }
    add_file_entry(manifest, "weights", data)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    done = registry.push(folder, "engine-1", uri, alias="production")
    assert done.engine == "maintenance" and done.metrics == {"rmse": 11.1, "per.x": 1.0}
    got = registry.pull("engine-1@production", tmp_path / "back", uri)
    assert got.files == 1 and np.array_equal(np.load(tmp_path / "back" / "weights.npy"), np.arange(4.0))
