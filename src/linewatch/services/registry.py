"""Model versions to and from the team's MLflow Model Registry (``LINEWATCH_REGISTRY_URI``; the library is
``linewatch.core.modelregistry``). Importing is a job (kind "import"): the registered version is downloaded into the
models folder, checked against its manifest, loaded, exported to ONNX when it has no export, and becomes a ready
model version that stations can activate. Publishing a ready version pushes its folder as a new registered version."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from linewatch.core.extras import missing
from linewatch.errors import LinewatchError
from linewatch.services import audit
from linewatch.services.accounts import Principal
from linewatch.services.context import AppContext
from linewatch.services.errors import Conflict, NotFound
from linewatch.services.jobs import active_twin
from linewatch.store.tables import Job, ModelVersion


def registry_uri(ctx: AppContext) -> str:
    """The registry's URI; Conflict (409) when the service has none or lacks the extra that talks to it."""
    uri = ctx.settings.registry_uri
    if not uri:
        raise Conflict("this service has no model registry: set LINEWATCH_REGISTRY_URI to the MLflow tracking URI")
    gone = missing("registry")
    if gone:
        raise Conflict('the model registry needs the registry extra on the service: pip install "linewatch[registry]"')
    return uri


def found_or_not(e: LinewatchError) -> LinewatchError:
    """A registry error as the service raises it: the registry lacking the model, version or alias is a NotFound."""
    from linewatch.core.modelregistry import RegistryNotFound

    return NotFound(str(e)) if isinstance(e, RegistryNotFound) else e


def start_import(ctx: AppContext, session: Session, who: Principal | None, ref: str, name: str | None) -> Job:
    """Queue the import of the registered version ``ref`` (NAME, NAME/VERSION or NAME@ALIAS, resolved now to its
    version number, so that an alias moved meanwhile does not change what is imported); its model version is
    "importing" until the job ends. NotFound when the registry has no such version; Conflict for a model of another
    engine (stations run vision models) or the same import queued or running."""
    from linewatch.core.modelregistry import resolve

    uri = registry_uri(ctx)
    try:
        found = resolve(ref, uri)
    except LinewatchError as e:
        raise found_or_not(e) from None
    if found["engine"] not in (None, "vision"):
        raise Conflict(
            f"version {found['version']} of {found['name']!r} is a {found['engine']} model: stations run vision models"
        )
    params = {"ref": ref, "registered": found["name"], "version": found["version"], "name": name}
    user_id = who.user_id if who is not None else None
    with session.begin():
        same = active_twin(session, "import", params)
        if same is not None:
            raise Conflict(f"the same import is already {same.status} as job #{same.id}")
        job = Job(kind="import", params=params, created_by=user_id, message="queued")
        session.add(job)
        session.flush()
        session.add(
            ModelVersion(
                name=(name or f"{found['name']} v{found['version']} (registry)")[:200],
                method=(found["method"] or "?")[:30],
                backbone="?",
                image_size=0,
                status="importing",
                job_id=job.id,
                created_by=user_id,
            )
        )
        audit.record(session, "model.import", who, target=f"registry {found['name']}/{found['version']}", job=job.id)
    ctx.jobs.submit(job.id)
    return job


def run_import(ctx: AppContext, job_id: int, params: dict, progress) -> dict:
    """The job: download, check, load, export when needed; the model version becomes ready with the manifest's
    method, backbone, input size, threshold and metrics, and where it came from (``metrics.registry``)."""
    from sqlalchemy import select

    from linewatch.core.modelregistry import pull
    from linewatch.services.training import remove_model_files
    from linewatch.vision.export import export_onnx
    from linewatch.vision.manifest import read_manifest
    from linewatch.vision.saving import load

    uri = registry_uri(ctx)
    with ctx.sessions() as s:
        model_id = s.scalar(select(ModelVersion.id).where(ModelVersion.job_id == job_id))
    final = ctx.settings.models_dir / str(model_id)
    progress("download", 0, 1)
    try:
        got = pull(f"{params['registered']}/{params['version']}", final, uri)
        if got.engine != "vision":
            raise LinewatchError(f"{params['ref']} is a {got.engine} model: stations run vision models")
        progress("check", 0, 1)
        det = load(final)  # the engine's own checks: files, format version, a model this linewatch can score
        if "onnx" not in read_manifest(final).get("files", {}):
            progress("export", 0, 1)
            export_onnx(final)
        m = read_manifest(final)
    except BaseException:
        remove_model_files(str(final))
        raise
    cal = det.calibration_
    origin = {"ref": params["ref"], "name": got.name, "version": got.version, "run_id": got.run_id, "uri": uri}
    with ctx.sessions() as s, s.begin():
        mv = s.get(ModelVersion, model_id)
        mv.status, mv.path = "ready", str(final.resolve())
        mv.method = str(m.get("method") or mv.method)[:30]
        mv.backbone = str(m.get("backbone") or "?")[:100]
        mv.image_size = int(m.get("image_size") or 0)
        mv.threshold = cal.image_threshold if cal else None
        mv.metrics = {**(m.get("metrics") or {}), "registry": origin}
    return {"model_id": model_id, "registered": got.name, "version": got.version}


def publish(
    ctx: AppContext, session: Session, who: Principal | None, model_id: int, name: str, alias: str | None
) -> dict:
    """Push ready model version ``model_id`` to the registry as a new version of ``name`` (``alias`` pointed at it)."""
    from linewatch.core.modelregistry import push

    uri = registry_uri(ctx)
    mv = session.get(ModelVersion, model_id)
    if mv is None:
        raise NotFound(f"no model version {model_id}")
    if mv.status != "ready" or not mv.path:
        raise Conflict(f"model version {model_id} is {mv.status}, not ready: there is nothing to publish yet")
    path, label = mv.path, mv.name
    session.rollback()  # no transaction held open while the files travel
    done = push(path, name, uri, alias, description=f"linewatch model version {model_id}: {label}")
    with session.begin():
        audit.record(
            session, "model.publish", who, target=f"model {model_id}", registered=done.name, version=done.version
        )
    return {"name": done.name, "version": done.version, "run_id": done.run_id, "alias": done.alias}


def publish_machine_model(
    ctx: AppContext, session: Session, who: Principal | None, model_id: int, name: str, alias: str | None
) -> dict:
    """Push ready machine model ``model_id`` (a table model or a maintenance model: an engine's model folder) to the
    registry as a new version of ``name`` (``alias`` pointed at it); another service imports it for a machine with
    the same sensors (``POST /machines/{name}/models/registry-import``)."""
    from linewatch.core.modelfiles import MANIFEST
    from linewatch.core.modelregistry import push
    from linewatch.store.tables import MachineModel

    uri = registry_uri(ctx)
    mm = session.get(MachineModel, model_id)
    if mm is None:
        raise NotFound(f"no machine model {model_id}")
    if mm.status != "ready" or not mm.path:
        raise Conflict(f"machine model {model_id} is {mm.status}, not ready: there is nothing to publish yet")
    path, method, version = mm.path, mm.method, mm.version
    if not (Path(path) / MANIFEST).is_file():
        raise Conflict(
            f"machine model {model_id} runs the {method} detector, a streaming checkpoint: the registry takes table "
            "models (mahalanobis, pca, ...) and maintenance models"
        )
    session.rollback()  # no transaction held open while the files travel
    done = push(path, name, uri, alias, description=f"linewatch machine model {model_id} (version {version}, {method})")
    with session.begin():
        audit.record(
            session,
            "model.publish",
            who,
            target=f"machine model {model_id}",
            registered=done.name,
            version=done.version,
        )
    return {"name": done.name, "version": done.version, "run_id": done.run_id, "alias": done.alias}
