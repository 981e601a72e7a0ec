"""Model versions in an MLflow Model Registry, for a team that keeps its models there: any engine's saved model (a
directory with ``manifest.json``: vision, sensors, maintenance) is pushed as an MLflow run's artifacts with its
evaluation metrics and parameters, and registered as a version of a named model (an alias such as ``production``
may point at it); it is pulled back by name and version or alias, and checked file by file against its manifest's
hashes before it replaces anything. The registry is whatever MLflow tracking URI the team runs: a server
(``http://mlflow:5000``), or a database file (``sqlite:///models/mlflow.db``; the artifacts then go beside it).

Needs the ``registry`` extra (mlflow-skinny) and no engine's libraries: pushing and pulling never load a model."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from linewatch.core.extras import require
from linewatch.core.modelfiles import MANIFEST, is_model_dir, replace_dir, sha256_file, staging_dir
from linewatch.errors import LinewatchError, ModelFileError

ARTIFACT_PATH = "model"  # the model directory's place among its run's artifacts
EXPERIMENT = "linewatch"
# what a version's reference may be: NAME, NAME/VERSION or NAME@ALIAS (MLflow's own model names allow more, but
# a slash or an at sign in a name would make references ambiguous)
_REF = re.compile(r"^(?P<name>[^/@]+?)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z_][A-Za-z0-9_-]*))?$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PARAM_SOURCES = ("params", "hyperparameters", "config")  # where each engine's manifest keeps its settings


class RegistryError(LinewatchError):
    """The registry itself failed: unreachable, refusing a write, or answering with an error."""


class RegistryNotFound(LinewatchError):
    """The registry has no such model, version or alias."""


@dataclass
class Pushed:
    """A model pushed: the registered version and the run that holds its files."""

    name: str
    version: int
    run_id: str
    alias: str | None
    engine: str
    method: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    tracking_uri: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Pulled:
    """A model pulled: which version, and where it was written."""

    name: str
    version: int
    aliases: list[str]
    run_id: str
    engine: str
    method: str | None
    files: int
    out: str

    def to_dict(self) -> dict:
        return asdict(self)


def _client(tracking_uri: str | None):
    require("registry", "the model registry")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise LinewatchError(
            "name the MLflow registry: --tracking-uri http://mlflow:5000 (a server) or sqlite:///PATH/mlflow.db "
            "(a database file), or set MLFLOW_TRACKING_URI"
        )
    # a registry server that does not answer is said in seconds, not after MLflow's minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # each caller says what it did
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    registry = os.environ.get("MLFLOW_REGISTRY_URI") if not tracking_uri else None
    try:
        return MlflowClient(tracking_uri=uri, registry_uri=registry or uri), uri
    except MlflowException as e:
        raise LinewatchError(
            f"{uri} cannot be an MLflow registry: {_say(e)[:160]} (http://HOST:5000, or sqlite:///PATH/mlflow.db)"
        ) from None


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a database file (MLflow's own default is ./mlruns under
    whatever folder the command runs in); a server decides for itself (None)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent.resolve() / "mlartifacts").as_uri()
    return None


def _mlflow_errors():
    from mlflow.exceptions import MlflowException

    return MlflowException


def _say(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e)
    return " ".join(str(text).split())[:300]


def _scalars(d, prefix: str = "", depth: int = 0) -> dict:
    """The numbers, strings and booleans of a nested dict, keys joined by dots (two levels deep at most)."""
    out: dict = {}
    if not isinstance(d, dict) or depth > 2:
        return out
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_scalars(v, key + ".", depth + 1))
        elif isinstance(v, bool | str) or (isinstance(v, int | float) and math.isfinite(v)):
            out[key] = v
        elif isinstance(v, list | tuple) and len(v) <= 16 and all(isinstance(x, int | float | str) for x in v):
            out[key] = ",".join(map(str, v))
    return out


def _metrics(m: dict) -> dict[str, float]:
    """The manifest's evaluation figures (and a sensor model's threshold), as MLflow metrics."""
    found = {
        k: float(v)
        for k, v in _scalars(m.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    if isinstance(m.get("threshold"), int | float) and math.isfinite(m["threshold"]):
        found["threshold"] = float(m["threshold"])
    cal = m.get("calibration")
    if isinstance(cal, dict):
        for k in ("image_threshold", "pixel_threshold", "false_alarm_rate"):
            if isinstance(cal.get(k), int | float) and math.isfinite(cal[k]):
                found[f"calibration.{k}"] = float(cal[k])
    return {_key(k): v for k, v in found.items()}


def _key(k: str) -> str:
    """An MLflow metric or parameter name: letters, digits and ``_-. /`` only, at most 250 characters."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", k)[:250]


def _params(m: dict) -> dict[str, str]:
    out = {"engine": str(m.get("engine") or "vision")}
    for k in ("method", "backbone", "image_size", "linewatch_version"):
        if m.get(k) is not None:
            out[k] = str(m[k])
    for source in _PARAM_SOURCES:
        for k, v in _scalars(m.get(source) or {}).items():
            out.setdefault(_key(k), str(v)[:6000])
    return dict(list(out.items())[:100])


def verify_files(model_dir: Path, m: dict) -> int:
    """Every file the manifest lists is there with its sha256; the count. ModelFileError otherwise."""
    files = m.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelFileError(f"{model_dir}: the manifest lists no files")
    for key, entry in files.items():
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
            raise ModelFileError(f"{model_dir}: the manifest's entry {key!r} names no file of the model")
        path = model_dir / name
        if not path.is_file():
            raise ModelFileError(f"{model_dir}: {name} is missing")
        if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
            raise ModelFileError(f"{model_dir}: {name} is not the file the manifest lists (its sha256 differs)")
    return len(files)


def _read(model_dir: Path) -> dict:
    """A model directory's manifest, whatever its engine (each engine's loader checks the rest when it loads)."""
    if not is_model_dir(model_dir):
        if not model_dir.exists():
            raise ModelFileError(f"model not found: {model_dir}")
        raise ModelFileError(f"{model_dir} is not a linewatch model (no {MANIFEST})")
    try:
        m = json.loads((model_dir / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{model_dir}: {MANIFEST} cannot be read ({e})") from None
    if not isinstance(m, dict):
        raise ModelFileError(f"{model_dir}: {MANIFEST} is not a JSON object")
    return m


def push(
    model_dir: str | Path,
    name: str,
    tracking_uri: str | None = None,
    alias: str | None = None,
    experiment: str = EXPERIMENT,
    description: str | None = None,
) -> Pushed:
    """Push the model in ``model_dir`` as a new version of the registered model ``name`` (created when new): an MLflow
    run in ``experiment`` holds its files, its evaluation metrics and its parameters; ``alias`` then points at it."""
    require("registry", "the model registry")
    model_dir = Path(model_dir)
    named = _REF.match(name)
    if not named or named.group("version") or named.group("alias"):
        raise LinewatchError(f"a model name has no '/' or '@' in it (they name versions and aliases): {name!r}")
    if alias is not None and not _ALIAS.match(alias):
        raise LinewatchError(f"an alias is a letter then letters, digits, '_' or '-' (e.g. production): {alias!r}")
    m = _read(model_dir)
    verify_files(model_dir, m)  # a damaged model never reaches the registry
    client, uri = _client(tracking_uri)
    MlflowException = _mlflow_errors()
    from mlflow.entities import Metric, Param

    engine = str(m.get("engine") or "vision")
    method = m.get("method")
    metrics = _metrics(m)
    try:
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment, _artifact_root(uri))
        tags = {"linewatch.engine": engine, "linewatch.model": str(model_dir.resolve())}
        if method:
            tags["linewatch.method"] = str(method)
        run = client.create_run(exp_id, tags=tags, run_name=f"{name}-{engine}")
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in _params(m).items()],
        )
        client.log_artifacts(run_id, str(model_dir), artifact_path=ARTIFACT_PATH)
        client.set_terminated(run_id)
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, tags={"linewatch.engine": engine}, description=description)
        mv = client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
            run_id=run_id,
            tags={"linewatch.engine": engine, **({"linewatch.method": str(method)} if method else {})},
            description=description,
        )
        if alias:
            client.set_registered_model_alias(name, alias, mv.version)
    except MlflowException as e:
        raise RegistryError(f"the MLflow registry at {uri} refused the model: {_say(e)}") from None
    except OSError as e:
        raise RegistryError(f"the MLflow registry at {uri} cannot be reached or written: {_say(e)}") from None
    return Pushed(name, int(mv.version), run_id, alias, engine, method, metrics, uri)


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``NAME``, ``NAME/VERSION`` or ``NAME@ALIAS``: (name, version, alias)."""
    match = _REF.match(ref.strip())
    if not match:
        raise LinewatchError(f"name a registered model as NAME, NAME/VERSION or NAME@ALIAS, not {ref!r}")
    version = match.group("version")
    return match.group("name"), int(version) if version else None, match.group("alias")


def resolve(ref: str, tracking_uri: str | None = None) -> dict:
    """The registered version ``ref`` names, without downloading it: name, version, run id, engine, method."""
    name, version, alias = parse_ref(ref)
    client, uri = _client(tracking_uri)
    mv = _version(client, name, version, alias, uri)
    tags = mv.tags or {}
    return {
        "name": name,
        "version": int(mv.version),
        "run_id": mv.run_id or "",
        "engine": tags.get("linewatch.engine"),
        "method": tags.get("linewatch.method"),
    }


def _version(client, name: str, version: int | None, alias: str | None, uri: str):
    MlflowException = _mlflow_errors()
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        if version is not None:
            return client.get_model_version(name, str(version))
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException as e:
        what = f"alias {alias!r}" if alias else (f"version {version}" if version is not None else "a version")
        if getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RegistryNotFound(f"the MLflow registry at {uri} has no {what} of model {name!r}") from None
        raise RegistryError(f"the MLflow registry at {uri} cannot be read: {_say(e)}") from None
    except OSError as e:
        raise RegistryError(f"the MLflow registry at {uri} cannot be reached: {_say(e)}") from None
    if not found:
        raise RegistryNotFound(f"the MLflow registry at {uri} has no model {name!r}")
    return max(found, key=lambda v: int(v.version))  # the newest


def _aliases(client, name: str) -> dict[int, list[str]]:
    """Version -> its aliases, from the registered model (a version found by a search does not carry them)."""
    found: dict[int, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        found.setdefault(int(version), []).append(alias)
    return {v: sorted(a) for v, a in found.items()}


def pull(ref: str, out: str | Path, tracking_uri: str | None = None) -> Pulled:
    """Download the registered version ``ref`` (``NAME``: the newest; ``NAME/3``; ``NAME@production``) into ``out``,
    checked file by file against its manifest before it replaces an earlier model there (never a folder of other
    things)."""
    name, version, alias = parse_ref(ref)
    client, uri = _client(tracking_uri)
    mv = _version(client, name, version, alias, uri)
    out = Path(out)
    stage = staging_dir(out)
    try:
        download = Path(tempfile.mkdtemp(dir=stage.parent, prefix=f".{out.name}.download-"))
        try:
            import mlflow.artifacts

            got = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(download)))
            if not (got / MANIFEST).is_file():  # a source that names the run's root rather than the model folder
                got = got / ARTIFACT_PATH
            m = _read(got)
            files = verify_files(got, m)
            shutil.rmtree(stage)
            shutil.move(str(got), str(stage))
        finally:
            shutil.rmtree(download, ignore_errors=True)
        replace_dir(stage, out)
    except ModelFileError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise ModelFileError(f"version {mv.version} of {name!r} in the registry is damaged: {e}") from None
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(e, _mlflow_errors() | OSError):
            raise RegistryError(f"version {mv.version} of {name!r} could not be downloaded: {_say(e)}") from None
        raise
    try:
        aliases = _aliases(client, name).get(int(mv.version), [])
    except _mlflow_errors():
        aliases = []
    return Pulled(
        name,
        int(mv.version),
        aliases,
        mv.run_id or "",
        str(m.get("engine") or "vision"),
        m.get("method"),
        files,
        str(out),
    )


def versions(name: str | None = None, tracking_uri: str | None = None) -> list[dict]:
    """The registered versions of ``name``, newest first (with ``name`` None: every registered model's newest
    version): version, aliases, engine, method, when, and the run's metrics."""
    client, uri = _client(tracking_uri)
    MlflowException = _mlflow_errors()
    try:
        if name is None:
            found = []
            for rm in client.search_registered_models():
                vs = client.search_model_versions(f"name = '{rm.name}'")
                if vs:
                    found.append(max(vs, key=lambda v: int(v.version)))
        else:
            found = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version))
            if not found:
                raise RegistryNotFound(f"the MLflow registry at {uri} has no model {name!r}")
        aliases = {model: _aliases(client, model) for model in {v.name for v in found}}
        rows = []
        for v in found:
            metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
            rows.append(
                {
                    "name": v.name,
                    "version": int(v.version),
                    "aliases": aliases[v.name].get(int(v.version), []),
                    "engine": (v.tags or {}).get("linewatch.engine"),
                    "method": (v.tags or {}).get("linewatch.method"),
                    "created": dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC).isoformat(
                        timespec="seconds"
                    ),
                    "metrics": dict(sorted(metrics.items())),
                }
            )
    except MlflowException as e:
        raise RegistryError(f"the MLflow registry at {uri} cannot be read: {_say(e)}") from None
    except OSError as e:
        raise RegistryError(f"the MLflow registry at {uri} cannot be reached: {_say(e)}") from None
    return rows
