"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis).

Every operation (all but the WebSocket, which is not in the schema) gets generated requests, valid and invalid
(positive and negative modes, NUL bytes, odd Unicode, huge numbers, broken multipart included), sent as an
authenticated admin. All of schemathesis' default checks are enforced (one exception below); for any input:

- never a 5xx (``not_a_server_error``);
- the status code is one the operation documents (``status_code_conformance``), and so is the content type;
- the body matches the documented schema for that status (``response_schema_conformance``): errors are
  ``{"detail": "..."}``, validation errors ``{"detail": "...", "errors": [...]}``, times carry an offset;
- invalid input is refused with a 4xx and valid input is not refused (``negative_data_rejection``,
  ``positive_data_acceptance``; not the latter for a body carrying a file: schema-valid bytes are rarely a valid
  image or table, and their refusal is a documented 400; nor for a free-form line model or scenario overrides,
  whose refusal is a documented 422 naming each bad field), the request without credentials is refused
  (``ignored_auth``), and a 405 names every method of the path (``unsupported_method``, ``allow_header_conformance``).

The app runs on a temporary data directory, once with SQLite and once with PostgreSQL (skipped when none
runs at 127.0.0.1:5432): PostgreSQL refuses NUL in text and checks varchar lengths and integer ranges, which
SQLite lets pass. The app's lifespan (the job runner) runs: schemathesis' ASGI transport starts it on first
use and its pytest plugin stops it after each test, so each operation's test runs with a started app. A few
rows are seeded so that generated ids and names sometimes hit real ones.

Each operation gets 15 generated examples per database (the same ones each run) and, on PostgreSQL, schemathesis'
boundary cases (its coverage phase: every documented limit, missing and wrongly typed field); on SQLite too when no
PostgreSQL runs. About 2 minutes for the file on 2 CPU cores.
A failure prints a ``@reproduce_failure`` blob and a curl command.
"""

from __future__ import annotations

import contextlib
import functools
import io
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from PIL import Image
from schemathesis.python import asgi

ADMIN, PASSWORD = "fuzz-admin", "fuzz-password"


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (40, 80, 120)).save(buf, format="PNG")
    return buf.getvalue()


def _seed(ctx) -> None:
    """One of each row, so that small generated ids (and names like ``cam1``) find something."""
    from linewatch.services.accounts import create_api_key, create_user
    from linewatch.store.tables import Dataset, DatasetImage, Inspection, Job, ModelVersion, Review, Station

    image = _png()
    key = ctx.blobs.put(image)
    with ctx.sessions() as s, s.begin():
        admin = create_user(s, ADMIN, PASSWORD, "admin")
        create_api_key(s, "camera", "operator", admin.id)
        ds = Dataset(name="parts", created_by=admin.id)
        s.add(ds)
        s.flush()
        # Fewer than 5 images: a fuzzed training job fails at once instead of training for real.
        s.add(DatasetImage(dataset_id=ds.id, filename="good.png", sha256=key, width=8, height=8))
        job = Job(kind="train", status="failed", params={"dataset_id": ds.id}, error="seeded", created_by=admin.id)
        s.add(job)
        s.flush()
        mv = ModelVersion(
            name="seeded", method="patchcore", backbone="efficientnet_lite0", image_size=64, status="failed",
            dataset_id=ds.id, job_id=job.id, created_by=admin.id,
        )  # fmt: skip
        s.add(mv)
        s.flush()
        st = Station(name="cam1")
        s.add(st)
        s.flush()
        ins = Inspection(
            station_id=st.id, model_id=mv.id, image_sha256=key, image_phash="0" * 16, heatmap_sha256=key,
            filename="part.png", width=8, height=8, score=1.0, normalized_score=0.2, verdict="good", regions=[],
            latency_ms=1.0,
        )  # fmt: skip
        s.add(ins)
        s.flush()
        s.add(Review(inspection_id=ins.id, reviewer_id=admin.id, verdict="good", note=""))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed_app(request, tmp_path_factory, postgres):
    from linewatch.api.app import build_context, create_app
    from linewatch.config import Settings

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres.database("lw_fuzz")) if request.param == "postgresql" else None
        settings = Settings(data_dir=tmp_path_factory.mktemp("fuzz") / "data", database_url=url)
        ctx = build_context(settings)
        try:
            _seed(ctx)
            PROXY.app = create_app(settings, ctx)
            yield PROXY, ctx
        finally:
            asgi.shutdown_lifespans()
            PROXY.app = None
            ctx.engine.dispose()


@pytest.fixture(scope="module")
def admin_headers(fuzzed_app) -> dict[str, str]:
    app, _ctx = fuzzed_app
    # Entering the client starts the app's lifespan (the job runner), which then stays up for all cases.
    with asgi.get_client(app) as client:
        r = client.post("/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
    return headers


def _openapi() -> dict:
    """The app's OpenAPI document, without a database: routes do not need the context to be described."""
    from types import SimpleNamespace

    from linewatch.api.app import create_app
    from linewatch.config import Settings

    return create_app(Settings(), context=SimpleNamespace()).openapi()


class _AppProxy:
    """An ASGI app that forwards to the app the ``fuzzed_app`` fixture built (lifespan included)."""

    app = None

    async def __call__(self, scope, receive, send):
        assert self.app is not None, "the fuzzed_app fixture sets the app"
        await self.app(scope, receive, send)


PROXY = _AppProxy()


def _file_uploads(doc: dict) -> set[tuple[str, str]]:
    """(method, path) of the operations whose multipart body has a binary part (an image, a definitions or history
    file): a schema cannot say what a valid file holds, so generated bytes the schema allows are rightly refused
    (400) as not an image or not a table. Those operations get every check but positive_data_acceptance."""
    out = set()
    schemas = doc.get("components", {}).get("schemas", {})
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            form = ((op.get("requestBody") or {}).get("content") or {}).get("multipart/form-data")
            if form is None:
                continue
            ref = form.get("schema", {}).get("$ref", "")
            props = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            if any(
                p.get("format") == "binary"
                or p.get("contentMediaType")
                or (p.get("items") or {}).get("format") == "binary"
                or (p.get("items") or {}).get("contentMediaType")
                for p in props.values()
            ):
                out.add((method.upper(), path))
    return out


# Loaded eagerly, one pytest item per operation: `schemathesis.pytest.from_fixture` does not work with the
# installed pytest 9 (it sets `Function._nodeid`, which pytest 9 no longer has). The schema is the app's own
# (built without a database); requests, including the checks' own extra requests, go through PROXY.
DOCUMENT = _openapi()
FILE_UPLOADS = _file_uploads(DOCUMENT)
# Bodies carrying a free-form document that the engine validates (the schema says "an object", the engine knows the
# rest): a line model, a simulation's scenario overrides, a machine's readings (whose sensors the schema cannot know:
# its own example names oil_temp, which a machine the fuzzer made has not). Like a file, a schema-valid object is
# rarely a valid one; its refusal is a documented 422 listing every problem. Every other check applies.
FREE_FORM_DOCUMENTS = {
    ("PUT", "/api/v1/lines/{line}/model"),
    ("POST", "/api/v1/lines/{line}/simulations"),
    ("POST", "/api/v1/machines/{name}/readings"),
}
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/api/v1/events")
schema.app = PROXY


@schema.parametrize()
# derandomize: the same examples every run (CI judges the code, not the draw); a new draw is a one-line change
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
    database=None,
    derandomize=True,
)
def test_api_never_fails_on_user_input(case, admin_headers, fuzzed_app, postgres):
    if case.meta.phase.name == "coverage" and _dialect(fuzzed_app) == "sqlite" and postgres.available():
        return  # the boundary cases run on PostgreSQL, the stricter database (see the module's docstring)
    _keep_signed_in(admin_headers, fuzzed_app)
    if _only_the_credentials_are_invalid(case):
        from schemathesis.specs.openapi import checks

        # the admin's own token replaces the invalid one (below), so the request is rightly accepted
        case.call_and_validate(headers=admin_headers, excluded_checks=[checks.negative_data_rejection])
    elif (case.method.upper(), case.path) in FILE_UPLOADS | FREE_FORM_DOCUMENTS:
        from schemathesis.specs.openapi import checks

        excluded = [checks.positive_data_acceptance]
        case.call_and_validate(headers=admin_headers, excluded_checks=excluded)
    elif _breaks_a_rule_between_training_parameters(case) or _breaks_a_rule_between_calibration_fields(case):
        from schemathesis.specs.openapi import checks

        response = case.call_and_validate(headers=admin_headers, excluded_checks=[checks.positive_data_acceptance])
        assert response.status_code == 400, response.text
    else:
        case.call_and_validate(headers=admin_headers)


def _dialect(fuzzed_app) -> str:
    return fuzzed_app[1].engine.dialect.name


def _only_the_credentials_are_invalid(case) -> bool:
    """A negative case whose one invalid part is its credentials (the headers of the security schemes: a bearer token,
    an API key): the test sends every request with the admin's token, which takes the place of the invalid one, and a
    valid token is enough, so nothing invalid is left to refuse."""
    from schemathesis.core.parameters import ParameterLocation

    meta = case.meta
    if not meta.generation.mode.is_negative:
        return False
    negative = {loc for loc, info in meta.components.items() if info.mode.is_negative}
    headers = {k.lower() for k in (case.headers or {})}
    return negative == {ParameterLocation.HEADER} and bool(headers) and headers <= {"authorization", "x-api-key"}


@functools.cache
def _train_request():
    from pydantic import TypeAdapter

    from linewatch.api.schemas import TrainIn

    return TypeAdapter(TrainIn)


def _breaks_a_rule_between_training_parameters(case) -> bool:
    """A training request whose parameters each fit the schema but not each other (a centre crop larger than the
    image size, a smallest region larger than the input): a JSON schema cannot compare two fields, so the service
    refuses these with a documented 400 before it queues a job, and that refusal is what is checked."""
    if (case.method.upper(), case.path) != ("POST", "/api/v1/jobs/train"):
        return False
    from linewatch.api.schemas import training_params
    from linewatch.errors import LinewatchError
    from linewatch.vision.methods import METHODS, check_across

    try:
        body = _train_request().validate_python(case.body)
    except Exception:  # not a schema-valid body: the other checks judge it
        return False
    spec = METHODS[body.method].params
    try:
        check_across(spec.validate(training_params(body)))  # the defaults for what the body leaves out
    except LinewatchError:
        return True
    return False


def _breaks_a_rule_between_calibration_fields(case) -> bool:
    """A recalibration naming two sources of images, or a window without a station or ending before it starts
    (``calibrating.check_sources``): refused with a documented 400, as the training's rules are."""
    if (case.method.upper(), case.path) != ("POST", "/api/v1/models/{model_id}/calibrate"):
        return False
    from linewatch.api.schemas import MAX_ID, CalibrateIn
    from linewatch.errors import LinewatchError
    from linewatch.services.calibrating import check_sources

    try:
        body = CalibrateIn.model_validate(case.body)
        valid_id = 1 <= int(str((case.path_parameters or {}).get("model_id"))) <= MAX_ID
    except Exception:  # not a schema-valid body: the other checks judge it
        return False
    content_type = {k.lower(): v for k, v in (case.headers or {}).items()}.get("content-type", "application/json")
    if not valid_id or not content_type.startswith("application/json"):  # refused as such first (422)
        return False
    try:
        check_sources(body.dataset_id, body.station, body.since, body.until)
    except LinewatchError:
        return True
    return False


def _keep_signed_in(headers: dict[str, str], fuzzed_app) -> None:
    """A fuzzed request may sign the admin's token out, or set the admin's password (which ends the user's tokens):
    sign in again, with the seeded password put back, when the token no longer works."""
    app, ctx = fuzzed_app
    with asgi.get_client(app) as client:
        if client.get("/api/v1/auth/me", headers=headers).status_code == 200:
            return
        from sqlalchemy import update

        from linewatch.services.accounts import hash_password
        from linewatch.store.tables import User

        with ctx.sessions() as s, s.begin():
            s.execute(update(User).where(User.name == ADMIN).values(password_hash=hash_password(PASSWORD), active=True))
        r = client.post("/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        headers["Authorization"] = f"Bearer {r.json()['access_token']}"


def test_job_runner_runs_under_the_fuzzed_app(fuzzed_app, admin_headers):
    """The lifespan schemathesis starts is the real one: a submitted job is picked up and finishes."""
    app, _ctx = fuzzed_app
    _keep_signed_in(admin_headers, fuzzed_app)
    with asgi.get_client(app) as client:
        ds = client.post("/api/v1/datasets", json={"name": "too small"}, headers=admin_headers).json()
        r = client.post("/api/v1/jobs/train", json={"dataset_id": ds["id"], "image_size": 64}, headers=admin_headers)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        for _ in range(200):
            job = client.get(f"/api/v1/jobs/{job_id}", headers=admin_headers).json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.05)
    assert job["status"] == "failed" and "at least 5" in job["error"], job
