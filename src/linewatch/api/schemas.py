"""Request and response bodies of the API."""

from __future__ import annotations

import datetime as dt
import re
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StringConstraints,
    Tag,
    create_model,
)

from linewatch.services.accounts import USER_NAME
from linewatch.vision.methods import DEFAULT_METHOD, METHODS

Role = Literal["admin", "engineer", "operator", "viewer"]
Verdict = Literal["good", "anomalous"]

# Ids are 32-bit integer columns (PostgreSQL ``integer``): larger ones cannot exist, and would make the database
# (or SQLite's driver, beyond 64 bits) fail instead of finding nothing.
MAX_ID = 2**31 - 1
# One line of text without control characters (PostgreSQL refuses NUL in text; the others have no place there).
LINE = r"^[^\x00-\x1f\x7f]*$"
# Free text: tabs and line breaks allowed, other control characters not.
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC, and the API says so (RFC 3339 needs it)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


Timestamp = Annotated[dt.datetime, AfterValidator(_utc)]


_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?([Zz]|[+-]\d\d:?\d\d)?")


def _in_utc(value: object) -> dt.datetime | None:
    """A time filter: an ISO 8601 date and time (not a number), in UTC as times are stored; without an offset
    it is taken as UTC."""
    if value is None or isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and _DATE_TIME.fullmatch(value):
        try:
            parsed = dt.datetime.fromisoformat(value.upper())
        except ValueError:
            raise ValueError("not a valid date and time, e.g. 2025-01-31T08:00:00Z") from None
    else:
        raise ValueError("expected a date and time like 2025-01-31T08:00:00Z")
    if parsed is None or parsed.tzinfo is None:
        return _utc(parsed) if parsed is not None else None
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


TimeFilter = Annotated[dt.datetime | None, BeforeValidator(_in_utc)]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """Every error response: a message that says what is wrong."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: body, query, path or header, then the field")
    msg: str


class ValidationErrorOut(BaseModel):
    """A request that does not match the API: which fields are wrong and why."""

    detail: str
    errors: list[FieldError]


_ERRORS = {
    400: "bad request: a body that cannot be parsed (not UTF-8, broken multipart) or an invalid Content-Length",
    401: "authentication required, or the token or API key is invalid or expired",
    403: "the caller's role is too low",
    404: "not found",
    409: "conflict with the current state",
    413: "too large: the request body or an image",
    422: "the request does not match the API (see errors)",
    429: "too many requests; Retry-After says when to try again",
    503: "the database or image store is unavailable; try again",
}


def errors(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error status codes, each with its JSON body; ``e404="no such dataset"`` to
    describe one more precisely."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {
            "model": ValidationErrorOut if code == 422 else ErrorOut,
            "description": described.get(f"e{code}", _ERRORS[code]),
        }
    return out


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=100, pattern=LINE)
    password: str = Field(min_length=1, max_length=1000)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: Timestamp
    role: Role


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=USER_NAME)
    password: str = Field(min_length=8, max_length=1000)
    role: Role


class UserPatch(BaseModel):
    role: Role | None = None
    active: StrictBool | None = Field(None, description="false: the user can no longer sign in")
    password: str | None = Field(None, min_length=8, max_length=1000)


class UserOut(Orm):
    id: int
    name: str
    role: Role
    active: bool
    created_at: Timestamp


class MeOut(BaseModel):
    user_id: int
    name: str
    role: Role
    via: str
    stations: list[str] | None = Field(None, description="an API key scoped to stations: those; else None")


StationName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=LINE)
    role: Role
    stations: list[StationName] | None = Field(
        None, min_length=1, max_length=100, description="the only stations the key may inspect at; None: any"
    )


class ApiKeyOut(Orm):
    id: int
    name: str
    prefix: str
    role: Role
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked: bool
    stations: list[str] | None = Field(None, description="the only stations it may inspect at; None: any")


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="shown once; only its hash is stored")


def _not_only_dots(name: str) -> str:
    if name.strip(".") == "":  # "." and ".." vanish from a URL's path: /stations/../inspect is another address
        raise ValueError("a station name needs a letter, digit, - or _ (dots alone vanish from its URL)")
    return name


class StationIn(BaseModel):
    name: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$"), AfterValidator(_not_only_dots)
    ]


DriftLevel = Literal["unknown", "ok", "watch", "drift"]


class StationOut(Orm):
    id: int
    name: str
    active_model_id: int | None
    previous_model_id: int | None = Field(
        None, description="the model a rollback would bring back (in the station list; None: nothing to roll back to)"
    )
    created_at: Timestamp
    drift_level: DriftLevel | None = Field(
        None,
        description="the drift watch's level for the model the station runs, as its watch stored it last (in the "
        "station list; None: not checked since that model was activated)",
    )
    drift_since: Timestamp | None = Field(None, description="when the watch found that level")


class ActivateIn(BaseModel):
    station: str = Field(min_length=1, max_length=100, pattern=LINE)


class DatasetIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=LINE)


class DatasetOut(BaseModel):
    id: int
    name: str
    images: int
    created_at: Timestamp
    area_inspected: float | None = Field(
        None,
        description="the share of each photo its inspection area inspects (GET /datasets/{id}/area); None: the "
        "whole photo",
    )


class UploadOut(BaseModel):
    added: int
    skipped: list[str]
    images: int
    masks: int = Field(0, description="added defective images that came with a ground-truth mask")


class _TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: int = Field(ge=1, le=MAX_ID, description="its images labelled good are the training set")
    test_dataset_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="labelled images (good and defect types) to evaluate the new model on"
    )
    name: str | None = Field(None, min_length=1, max_length=200, pattern=LINE)


def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("a number is needed, not true or false")
    return v


_NAME = r"^[A-Za-z0-9_.-]+$"


#: bounds the service sets tighter than the engine: a station judges parts against a threshold, which needs
#: held-out good images (a library user may fit without them)
_SERVICE_BOUNDS = {"holdout": {"ge": None, "gt": 0}}
MAX_ROWS_BACK = 10_000  # the longest window, lag or difference a request may ask a sensor model for


def _param_type(spec) -> Any:
    """A declared parameter's type for the request schema: names restricted to safe characters, numbers that
    refuse booleans (pydantic would read ``false`` as 0) and NaN or infinity (a JSON body may hold them)."""
    base = spec.base_type
    pattern = f"^{spec.param.pattern}$" if spec.param.pattern else _NAME
    if spec.param.choices is not None and not spec.is_list:
        t = Literal[tuple(spec.param.choices)]  # the schema lists them: any other is a 422, as on the command line
    elif spec.param.choices is not None:
        # a list of choices (an ensemble's member methods): one at least
        t = Annotated[list[Literal[tuple(spec.param.choices)]], Field(min_length=1, max_length=20)]  # type: ignore[valid-type]
    elif spec.is_list and typing.get_args(base) == (int,):
        # the declared bounds of each item (an autoencoder's layer widths), else row counts (a sensor model's
        # windows, lags, differences): positive, a bounded look-back
        p = spec.param
        bounds = {"ge": p.ge, "le": p.le} if p.ge is not None or p.le is not None else {"ge": 1, "le": MAX_ROWS_BACK}
        item = Annotated[int, Field(**bounds), BeforeValidator(_not_bool)]
        t = Annotated[list[item], Field(min_length=p.min_items, max_length=20)]  # type: ignore[valid-type]
    elif spec.is_list:
        t = list[Annotated[str, StringConstraints(pattern=pattern, max_length=100)]]
    elif base is str:
        t = Annotated[str, StringConstraints(pattern=pattern, max_length=300)]
    elif base in (int, float):
        p = spec.param
        bounds = {"ge": p.ge, "le": p.le, "gt": p.gt, "lt": p.lt, **_SERVICE_BOUNDS.get(spec.name, {})}
        finite = {"allow_inf_nan": False} if base is float else {}
        t = Annotated[base, Field(**bounds, **finite), BeforeValidator(_not_bool)]
    elif base is bool:
        t = StrictBool  # true or false, not 0 or "yes"
    else:
        t = base
    return t | None if spec.optional else t


def _train_variant(entry) -> type[BaseModel]:
    """One method's training request: the request fields, the method's name and every exposed parameter from
    its declaration (``linewatch.vision.methods``), so API training sets what the CLI sets, with the same bounds.
    A parameter left out (or null) takes the method's default, which its description names."""
    default = entry.name if entry.name == DEFAULT_METHOD else ...
    fields: dict = {"method": (Literal[entry.name], Field(default, description=entry.help))}
    for n, spec in entry.params.exposed().items():
        p = spec.param
        if not p.api:
            continue
        t = _param_type(spec)
        shown = "none" if p.default is None else ",".join(map(str, p.default)) if spec.is_list else p.default
        fields[n] = (t if spec.optional else t | None, Field(None, description=f"{p.help} (default: {shown})"))
    return create_model(f"Train{entry.name.title()}In", __base__=_TrainRequest, **fields)


def _method_of(body: Any) -> str:
    method = body.get("method", DEFAULT_METHOD) if isinstance(body, dict) else getattr(body, "method", None)
    return method if method in METHODS else "unknown"


_TRAIN_VARIANTS = tuple(Annotated[_train_variant(e), Tag(e.name)] for e in METHODS)
#: POST /jobs/train's body: one variant per vision method, told apart by ``method`` (default: patchcore)
TrainIn = Annotated[
    Union[_TRAIN_VARIANTS],  # noqa: UP007
    Discriminator(
        _method_of,
        custom_error_type="method",
        custom_error_message=f"method must be one of {', '.join(METHODS.names())}",
    ),
]


def training_params(body: BaseModel) -> dict:
    """The detector parameters a training request sets (the others take the method's defaults)."""
    return body.model_dump(exclude=set(_TrainRequest.model_fields) | {"method"}, exclude_none=True)


class CalibrateIn(BaseModel):
    """A model version's thresholds set again without training, as a new version (``POST /models/{id}/calibrate``).
    One source of good images at most (a dataset or a station), since and until with a station only, since before
    until: a JSON schema cannot compare fields, so a body breaking these is refused with a 400."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="its images labelled good, which the model was not trained on, set the thresholds; with neither "
        "a dataset nor a station: the held-out good scores the version keeps (another false_alarm_rate alone)",
    )
    station: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=LINE,
        description="instead of a dataset: the photos this station inspected from since to until, when the parts "
        "run through it were good (a batch of known-good parts after a change of light or camera); those a reviewer "
        "marked defective and repeated photos are left out, the newest 2,000 are used",
    )
    since: TimeFilter = Field(None, description="with station: inspected at or after (default: an hour before until)")
    until: TimeFilter = Field(None, description="with station: inspected before (default: now)")
    false_alarm_rate: Annotated[float | None, BeforeValidator(_not_bool)] = Field(
        None,
        gt=0,
        lt=0.5,
        allow_inf_nan=False,
        description="share of good parts flagged (0.01 is 1 %); default: the version's current rate",
    )
    name: str | None = Field(None, min_length=1, max_length=200, pattern=LINE)


REGISTERED = r"^[^/@\x00-\x1f\x7f]+$"  # a registered model's name: '/' and '@' name its versions and aliases
ALIAS = r"^[A-Za-z_][A-Za-z0-9_-]*$"
#: a registered version: NAME (its newest), NAME/VERSION or NAME@ALIAS
REGISTRY_REF = r"^[^/@\x00-\x1f\x7f]+(/[0-9]{1,9}|@[A-Za-z_][A-Za-z0-9_-]*)?$"


class ModelImportIn(BaseModel):
    """A registered version of the team's MLflow Model Registry imported as a model version
    (``POST /registry/import``)."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(
        min_length=1,
        max_length=300,
        pattern=REGISTRY_REF,
        description="NAME (its newest version), NAME/VERSION or NAME@ALIAS, e.g. bottle-cam1@production",
        examples=["bottle-cam1@production"],
    )
    name: str | None = Field(
        None, min_length=1, max_length=200, pattern=LINE, description="the model version's name (default: NAME vN)"
    )


class MachineModelImportIn(BaseModel):
    """A sensors model of the team's MLflow Model Registry imported as a machine's model version
    (``POST /machines/{name}/models/registry-import``)."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(
        min_length=1,
        max_length=300,
        pattern=REGISTRY_REF,
        description="NAME (its newest version), NAME/VERSION or NAME@ALIAS, e.g. press-oil@production",
    )


class ModelPublishIn(BaseModel):
    """A ready model version pushed to the team's MLflow Model Registry (``POST /models/{id}/publish``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=REGISTERED, description="the registered model's name")
    alias: str | None = Field(
        None, min_length=1, max_length=100, pattern=ALIAS, description="point this alias at it, e.g. production"
    )


class RegistryVersionOut(BaseModel):
    name: str = Field(description="the registered model")
    version: int = Field(description="its new version")
    run_id: str = Field(description="the MLflow run that holds the files, metrics and parameters")
    alias: str | None


class JobOut(Orm):
    id: int
    kind: str
    status: str
    progress: float
    message: str
    params: dict
    result: dict | None
    error: str | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class ModelOut(Orm):
    id: int
    name: str
    method: str
    backbone: str
    image_size: int
    status: str = Field(description="training, calibrating, importing (from the model registry), ready or failed")
    threshold: float | None
    metrics: dict | None
    dataset_id: int | None
    job_id: int | None
    created_by: int | None
    created_at: Timestamp
    stations: list[str] = []


class TestScore(BaseModel):
    label: str = Field(description="good, or the defect type")
    score: float = Field(description="raw anomaly score")


class DriftWindow(BaseModel):
    """Consecutive recent parts of a station, for a chart of when something moved: the medians of their figures."""

    until: Timestamp = Field(description="the time of the group's newest part")
    parts: int
    score: float | None = Field(description="median raw score")
    brightness: float | None = Field(description="median brightness (0 to 1); None before it was kept")
    look: float | None = Field(
        description="median cosine distance of the photos to their nearest reference photo; None without looks"
    )


class DriftBand(BaseModel):
    """Where the reference's figures lie: [5th percentile, median, 95th percentile] each, None where not kept."""

    score: list[float] | None
    brightness: list[float] | None
    look: list[float] | None = Field(description="the reference photos' distances to their nearest other one")


class DriftPhoto(BaseModel):
    """A recent part whose photo looks least like the good ones (its distance to the nearest good photo kept)."""

    inspection_id: int
    distance: float


class StationDriftOut(BaseModel):
    """Whether a station's recent parts still score as the good parts its model's thresholds were set on: a rank test
    of the recent scores against the held-out good scores the model keeps, and, where reviewers looked at flagged
    parts, the flags they overturned against the promised false-alarm rate, and what the photos look like (whole-image
    vectors and brightness) against the good photos the model keeps. ``level`` is the worst of them."""

    station: str
    model_id: int
    level: DriftLevel = Field(description="unknown (too few parts), ok, watch or drift")
    reason: str = Field(description="what the figures say and what to do")
    recent: int = Field(description="parts compared (repeated photos and parts reviewed as defective left out)")
    reference: int = Field(description="held-out good scores of the model")
    since: Timestamp | None = Field(None, description="the oldest part compared")
    until: Timestamp | None = Field(None, description="the newest part compared")
    reference_source: str | None = Field(None, description="training, or the images of the last recalibration")
    reference_at: str | None = None
    shift_auroc: float | None = Field(
        None, description="chance that a recent score is above a reference one: 0.5 unmoved, towards 1 higher"
    )
    p_value: float | None = Field(None, description="two-sided Mann-Whitney test of the shift")
    median_percentile: float | None = Field(None, description="the recent median's percentile among the reference")
    scores_level: DriftLevel
    flags: int = Field(description="recent parts flagged")
    reviewed_flags: int = Field(description="of those, reviewed")
    flagged_share: float | None = None
    promised_rate: float | None = Field(None, description="the false-alarm rate the thresholds were set for")
    false_alarms: int | None = Field(None, description="flags reviewers overturned (None: no flag reviewed)")
    false_alarm_share: float | None = None
    false_alarm_p: float | None = Field(None, description="binomial: this many or more at the promised rate")
    false_alarms_level: DriftLevel
    look_auroc: float | None = Field(
        None,
        description="chance that a recent photo is farther from its nearest reference photo than a reference photo is "
        "from its own (whole-image search vectors): 0.5 unmoved, towards 1 the photos look otherwise",
    )
    look_p: float | None = Field(None, description="one-sided Mann-Whitney test of the looks")
    look_level: DriftLevel = "unknown"
    brightness_change: float | None = Field(
        None, description="the recent photos' median brightness relative to the reference's, minus 1 (-0.2: darker)"
    )
    brightness_auroc: float | None = Field(None, description="chance that a recent photo is brighter than a reference")
    brightness_p: float | None = Field(None, description="two-sided Mann-Whitney test of the brightness")
    brightness_level: DriftLevel = "unknown"
    trend: list[DriftWindow] = Field(
        [], description="the recent parts, oldest first, in up to 24 consecutive groups: when something moved"
    )
    reference_band: DriftBand | None = None
    farthest: list[DriftPhoto] = Field(
        [], description="the recent parts whose photos look least like the good ones, farthest first (up to 5)"
    )


class StationDriftChangeOut(BaseModel):
    """A change of a station's drift level, as the service's watch found it (it checks stations with new parts
    every minute)."""

    station: str
    model_id: int | None
    level: DriftLevel
    previous_level: DriftLevel | None
    recent: int = Field(description="parts compared")
    shift_auroc: float | None
    false_alarm_share: float | None
    reason: str
    at: Timestamp


class TestScoresOut(BaseModel):
    """The evaluation's per-image raw scores, for a score histogram and a ROC curve; empty when the version was
    trained without a test dataset."""

    model_id: int
    threshold: float | None
    items: list[TestScore]


class RegionOut(BaseModel):
    x: int
    y: int
    width: int
    height: int
    area: int
    max_score: float
    mean_score: float


class ReviewOut(Orm):
    id: int
    inspection_id: int
    reviewer_id: int | None
    reviewer: str | None = Field(None, description="the reviewer's user name")
    verdict: Verdict
    defect_type: str | None
    note: str
    created_at: Timestamp


class InspectionOut(Orm):
    id: int
    station: str
    model_id: int
    filename: str | None
    image_sha256: str
    image_phash: str
    width: int
    height: int
    score: float
    normalized_score: float
    verdict: Verdict
    regions: list[RegionOut]
    latency_ms: float
    reviewed: bool
    review_verdict: Verdict | None = Field(
        None, description="the latest review's verdict: what counts once a person has looked (None: not reviewed)"
    )
    defect_type: str | None = Field(None, description="the latest review's defect type")
    duplicate_of: int | None = Field(
        None, description="the earlier inspection of the same station this upload repeats (a duplicate)"
    )
    duplicate_kind: Literal["exact", "near"] | None = Field(
        None, description="exact: the same bytes; near: the same photo re-encoded or cropped by a few pixels"
    )
    created_at: Timestamp
    image_url: str
    heatmap_url: str = Field(description="the coloured anomaly map (≤ 256 px; lay it over the image)")
    overlay_url: str = Field(description="the image with the map blended in and the regions boxed")
    review: ReviewOut | None = Field(
        None, description="the latest review, with its reviewer (in lists and on one inspection; not in live events)"
    )


class InspectionPage(BaseModel):
    items: list[InspectionOut]
    next_cursor: int | None


class ReviewIn(BaseModel):
    verdict: Verdict
    defect_type: str | None = Field(None, max_length=100, pattern=LINE)
    note: str = Field("", max_length=5000, pattern=TEXT)


# -- machines, readings, alerts ---------------------------------------------------------------------------------------
class LineIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:@()-]{0,99}$")
    description: str = Field("", max_length=2000, pattern=TEXT)


class LineOut(Orm):
    id: int
    name: str
    description: str
    machines: int = 0
    created_at: Timestamp


class SensorOut(Orm):
    name: str
    unit: str
    low: float | None
    high: float | None


class MachineOut(BaseModel):
    id: int
    name: str
    line: str
    type: str
    description: str
    stations: list[str]
    sensors: list[SensorOut]
    active_model_id: int | None
    previous_model_id: int | None = Field(None, description="the model a rollback would bring back")
    maintenance_model_id: int | None = Field(None, description="the maintenance model whose predictions are kept")
    life_start: Timestamp | None = Field(None, description="the last maintenance: maintenance cycles count from it")
    health: float | None = Field(description="0 (alerting) to 1 (normal), from the active model's recent scores")
    health_at: Timestamp | None
    last_reading_at: Timestamp | None
    open_alerts: int
    created_at: Timestamp


class ImportOut(BaseModel):
    lines: int
    created: list[str]
    updated: list[str]


class IngestOut(BaseModel):
    stored: int = Field(description="readings stored")
    duplicates: int = Field(description="readings already stored (the same sensor and time), not stored again")
    refused: int = Field(description="readings refused (kept as dead letters with the reason)")
    reasons: dict[str, int]


class SeriesOut(BaseModel):
    sensor: str = Field(description="the sensor, or _score: the machine's anomaly score")
    unit: str
    t: list[float] = Field(description="bucket start times, seconds since the epoch")
    n: list[int] = Field(description="readings in each bucket")
    mean: list[float]
    min: list[float]
    max: list[float]


class ReadingsOut(BaseModel):
    machine: str
    start: Timestamp
    end: Timestamp
    resolution: Literal["raw", "1m", "10m", "1h"] = Field(description="what was read: raw readings or a roll-up")
    step_s: float = Field(description="bucket width in seconds")
    threshold: float | None = Field(description="the active model's alert threshold on the _score series")
    series: list[SeriesOut]


def _params_model(name: str, params_cls) -> type[BaseModel]:
    """Every exposed parameter of a declaration, optional, with its bounds: left out, the default."""
    fields: dict = {}
    for n, spec in params_cls.exposed().items():
        p = spec.param
        t = _param_type(spec)
        fields[n] = (t if spec.optional else t | None, Field(None, description=f"{p.help} (default: {p.default})"))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def _detector_params(name: str, cls_name: str) -> type[BaseModel]:
    from linewatch.sensors import methods

    return _params_model(name, getattr(methods, cls_name))


def _title(method: str) -> str:
    """``knn`` → ``Knn``: the part of a machine model's schema names that names its detector."""
    return method.title().replace("_", "")


def _table_params() -> dict[str, type[BaseModel]]:
    """The parameters of each table detector a machine model can run (the sensor engine's methods)."""
    from linewatch.sensors.methods import METHODS as SENSOR_METHODS

    return {e.name: _params_model(f"{_title(e.name)}ParamsIn", e.params) for e in SENSOR_METHODS}


StreamParamsIn = _detector_params("StreamParamsIn", "StreamParams")
SurpriseParamsIn = _detector_params("SurpriseParamsIn", "SurpriseParams")
TABLE_PARAMS_IN = _table_params()


def _train_in(method: str, params_model: type[BaseModel]) -> type[BaseModel]:
    """The body that trains a machine model running detector ``method``: ``method`` may be left out for the
    service's default detector only, so that every body matches exactly one of the kinds."""
    from linewatch.sensors.methods import METHODS as SENSOR_METHODS
    from linewatch.services.machine_models import DEFAULT_DETECTOR

    if method in SENSOR_METHODS:
        help = SENSOR_METHODS[method].help
        what = f"a {method} table model (one model over all the sensors, read at the same times; {help})"
    else:
        what = {
            "stream": "the stream detector (each sensor's deviation from its running mean)",
            "surprise": "the surprise detector (each sensor's new patterns, rare levels and deviations)",
        }[method]
    default = method == DEFAULT_DETECTOR
    fields: dict = {
        "start": (TimeFilter, Field(None, description="first reading time to train on; default: a week before end")),
        "end": (TimeFilter, Field(None, description="end of the training readings; default: now")),
        "method": (
            Literal[method],  # type: ignore[valid-type]
            Field(
                method if default else ...,
                description=f"{what}" + (" (the default when left out)" if default else ""),
            ),
        ),
        "params": (
            params_model,
            Field(
                default_factory=params_model,
                description=f"the detector's parameters (linewatch sensors methods: {method}); left out: the defaults",
            ),
        ),
    }
    return create_model(f"MachineTrain{_title(method)}In", __config__=ConfigDict(extra="forbid"), **fields)


def _detector_of(body) -> str:
    from linewatch.services.machine_models import DEFAULT_DETECTOR

    method = body.get("method") if isinstance(body, dict) else getattr(body, "method", None)
    return method if isinstance(method, str) and method else DEFAULT_DETECTOR


#: a training body per detector a machine model can run: the streaming ones, then the table ones
MACHINE_TRAIN_IN: dict[str, type[BaseModel]] = {
    "stream": _train_in("stream", StreamParamsIn),
    "surprise": _train_in("surprise", SurpriseParamsIn),
    **{m: _train_in(m, params) for m, params in TABLE_PARAMS_IN.items()},
}
MachineTrainIn = Annotated[
    Union[tuple(Annotated[body, Tag(m)] for m, body in MACHINE_TRAIN_IN.items())],  # type: ignore[valid-type]  # noqa: UP007
    Discriminator(_detector_of),
]


class MachineModelOut(Orm):
    id: int
    machine: str = ""
    version: int
    kind: str = Field(description="anomaly (scores readings), rul (remaining useful life) or failure (risk)")
    method: str
    params: dict
    sensors: list[str]
    status: str
    metrics: dict | None
    source: dict
    job_id: int | None
    created_at: Timestamp
    active: bool = False


class AlertOut(BaseModel):
    id: int
    machine: str
    kind: str
    status: Literal["open", "closed"]
    opened_at: Timestamp
    last_at: Timestamp
    closed_at: Timestamp | None
    peak_score: float
    anomalous_readings: int
    sensors: list[dict] = Field(description="the sensors that drove it, the most anomalous first")
    model_id: int | None
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: Timestamp | None


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=5000, pattern=TEXT)


class AcknowledgeIn(BaseModel):
    comment: str | None = Field(None, max_length=5000, pattern=TEXT)


class CommentOut(BaseModel):
    id: int
    user: str | None
    text: str
    created_at: Timestamp


class AlertDetailOut(AlertOut):
    comments: list[CommentOut]


class DeadLetterOut(Orm):
    id: int
    source: str
    topic: str
    reason: str
    count: int
    payload: str
    created_at: Timestamp


# -- schedules ---------------------------------------------------------------------------------------------------------
class ScheduleIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=LINE)
    instance: dict[str, Any] | None = Field(
        None, description="linewatch instance JSON (machines, jobs with operations, due dates, windows, setups)"
    )
    text: str | None = Field(
        None, max_length=5_000_000, description="or the instance as JSPLIB / Taillard text (as the files ship)"
    )


class SolveIn(BaseModel):
    solver: Literal["cpsat", "rules"] = "cpsat"
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="solver parameters (linewatch schedule solve --help): objective, time_limit, workers, rule, ...",
    )


class ReplanIn(BaseModel):
    event: dict[str, Any] = Field(
        description="machine_down {machine, time, until?}, machine_up {machine, time}, rush_order {time, job}, "
        "operation_delayed {job, index, delay, time}",
        examples=[{"type": "machine_down", "machine": 3, "time": 120, "until": 300}],
    )
    params: dict[str, Any] = Field(default_factory=dict, description="time_limit, workers, per_move, per_shift")


class ScheduleOut(Orm):
    id: int
    name: str
    parent_id: int | None
    solver: str | None
    params: dict
    status: str
    summary: dict | None = Field(description="objective, value, makespan, weighted tardiness, bound, gap, timings")
    changes: dict | None = Field(description="a replan's: operations moved, shifted, interrupted")
    event: dict | None
    active: bool
    job_id: int | None
    created_at: Timestamp


class ScheduleDetailOut(ScheduleOut):
    instance: dict
    plan: dict | None = Field(description="the plan: per operation job, index, machine, start, end")


class MaintenancePointOut(Orm):
    time: Timestamp = Field(description="the end of the cycle")
    cycle: int = Field(description="cycles since the life start, from 1")
    rul: float | None = Field(description="remaining useful life, in cycles")
    rul_low: float | None
    rul_high: float | None
    failure_probability: float | None


class MaintenanceOut(BaseModel):
    machine: str
    model: MachineModelOut | None
    life_start: Timestamp | None
    cycle_s: float | None = Field(description="seconds of readings per cycle of the model")
    predictions: list[MaintenancePointOut]


class MaintenanceDoneIn(BaseModel):
    time: TimeFilter = Field(None, description="when the maintenance was done; default: now")
    failure: bool | None = Field(
        None,
        description="the machine had failed: the life ending here ran to failure, and its stored readings can "
        "train a remaining-useful-life model (maintenance/train); default: false",
    )
    failed_at: TimeFilter = Field(None, description="when it failed (implies failure); default with failure: time")


def _rul_params() -> type[BaseModel]:
    """The RUL engine's parameters (``linewatch maintenance fit --help``) and the service's settings of the model."""
    from linewatch.maintenance.methods import RulParams

    engine = _params_model("RulEngineParams", RulParams)
    number = BeforeValidator(_not_bool)
    return create_model(
        "MaintenanceRulParamsIn",
        __base__=engine,
        target=(Literal["rul"] | None, Field(None, description="rul: trained on stored readings, only RUL")),
        cycle_s=(
            Annotated[float, Field(ge=1, le=30 * 86400), number] | None,
            Field(None, description="seconds of readings per cycle (default: 3600)"),
        ),
        alert_below_s=(
            Annotated[float, Field(ge=0, le=1e9), number] | None,
            Field(None, description="a maintenance alert when the RUL's lower bound is under it (default: 86400)"),
        ),
    )


MaintenanceRulParamsIn = _rul_params()


class MaintenanceTrainIn(BaseModel):
    params: MaintenanceRulParamsIn = Field(  # type: ignore[valid-type]
        default_factory=MaintenanceRulParamsIn,
        description="the service's cycle_s and alert_below_s, and the engine's parameters (linewatch maintenance "
        "fit --help); left out: the defaults",
    )
    fleet: bool | None = Field(
        None,
        description="also learn from the runs to failure of every machine sharing this machine's type; default: false",
    )


class AuditEntryOut(BaseModel):
    id: int
    created_at: Timestamp
    actor: str = Field(description="the user, user/key for an API key, or the name tried at a failed sign-in")
    actor_id: int | None = Field(description="the user's id (None: no such user)")
    via: str | None = Field(description="token, api_key or password (sign-in)")
    action: str = Field(description="e.g. auth.login, auth.login_failed, user.update, api_key.create, model.activate")
    target: str | None = Field(description="what it was done to, e.g. 'user alice', 'inspection 42'")
    client: str | None = Field(description="the client's address")
    detail: dict[str, Any] = Field(description="what changed, e.g. role: [old, new]")


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: int | None = Field(description="pass as cursor for older entries; None: no more")


# -- the digital twin -----------------------------------------------------------------------------------------------
TwinName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=LINE)]


class TwinModelProblem(BaseModel):
    path: str = Field(description="where in the line model, e.g. machines[2].cycle_time_s")
    message: str


class TwinModelErrorOut(BaseModel):
    """A line model (or a scenario) that does not validate: every problem by its path in the document."""

    detail: list[TwinModelProblem]


class LineModelOut(BaseModel):
    line: str
    version: int = Field(description="1 for the first model of the line, one more for each change")
    model: dict = Field(description="the line model as stored (linewatch.twin's line document)")
    updated_at: Timestamp


class TwinHealthOut(BaseModel):
    open_alerts: int = 0
    rul: float | None = Field(None, description="remaining useful life in cycles (maintenance prediction)")
    rul_low: float | None = None
    rul_high: float | None = None
    failure_probability: float | None = None


class TwinMachineOut(BaseModel):
    machine: str
    state: str | None = Field(description="running, idle, blocked, starved, down, maintenance; null: no event yet")
    since: str | None = Field(description="ISO 8601: when it entered the state")
    reason: str | None = Field(description="why (a failure mode, off shift, ...)")
    job: str | None = Field(description="what it works on (a product or job name)")
    good: int
    defective: int
    reworked: int = 0
    health: TwinHealthOut


class TwinBufferOut(BaseModel):
    buffer: str
    level: int | None = Field(description="the last reported level; null: never reported")
    capacity: int | None


class TwinStateOut(BaseModel):
    line: str
    at: str = Field(description="ISO 8601: the time this state is of")
    machines: list[TwinMachineOut]
    buffers: list[TwinBufferOut]


class TwinEventIn(BaseModel):
    """A machine's state (``machine``, ``state``) or a buffer's level (``buffer``, ``level``). ``ts``: seconds since
    the epoch or ISO 8601 (default: now); ``good``/``defective``/``reworked``: parts completed since the machine's
    previous event (only while running)."""

    model_config = ConfigDict(extra="allow")
    machine: str | None = None
    state: str | None = None
    ts: float | str | None = None
    reason: str | None = None
    job: str | None = None


class TwinRejectedOut(BaseModel):
    index: int = Field(description="the event's place in the request (0 for a single event)")
    reason: str


class TwinAcceptedOut(BaseModel):
    accepted: int
    rejected: list[TwinRejectedOut]


class TwinEventOut(BaseModel):
    id: int
    ts: str = Field(description="ISO 8601")
    machine: str = Field(description="the machine (or, for kind buffer, the buffer)")
    kind: Literal["state", "health", "buffer"]
    state: str | None
    reason: str | None
    job: str | None
    source: str = Field(description="mqtt, http, inspection, alert, maintenance")
    data: dict = Field(description="state: good/defective/reworked; health: open_alerts, rul, ...; buffer: level")


class TwinEventsOut(BaseModel):
    items: list[TwinEventOut]
    next_cursor: int | None = Field(description="pass as cursor for the next page; null: no more")


class OeeFigures(BaseModel):
    """ISO 22400-2 figures of a machine or of the line (linewatch.twin.oee's JSON): ratios 0..1 (null where
    undefined), times in seconds, quantities in parts. ``losses``: planned_downtime_s, downtime_s by cause,
    delay_s (starved, blocked, idle), speed_loss_s, scrap_loss_s, rework_loss_s, no_data_s. The line's figures
    also have ``output_oee``: good parts out x the line's ideal cycle / planned operation time."""

    model_config = ConfigDict(extra="allow")
    name: str
    oee: float | None
    availability: float | None
    performance: float | None
    quality: float | None
    planned_operation_s: float
    planned_busy_s: float
    production_s: float
    good: float
    scrap: float
    rework: float
    ideal_s: float
    losses: dict


class OeeMachineOut(OeeFigures):
    machine: str


class OeeShiftOut(OeeFigures):
    shift: str
    start: str
    end: str
    machines: list[OeeMachineOut]


class TwinOeeOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    line: OeeFigures
    machines: list[OeeMachineOut]
    shifts: list[OeeShiftOut]
    rejected: int = Field(description="stored events the model's state machine refuses now (e.g. after a change)")

    model_config = ConfigDict(populate_by_name=True)


class ScenarioIn(BaseModel):
    name: TwinName
    overrides: dict = Field(
        default_factory=dict,
        description="changes of the line model (linewatch.twin scenarios: machines/buffers/... merged by name, mix)",
    )


class SimulationIn(BaseModel):
    hours: float = Field(8.0, gt=0, le=24 * 366, description="simulated horizon")
    replications: int = Field(10, ge=1, le=500)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    from_live: bool = Field(False, description="start from the live state (machines down, buffer levels) and now")
    scenarios: list[ScenarioIn] = Field(default_factory=list, max_length=20)
    schedule_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="run this schedule's plan on the line (and each scenario) instead of the product mix: each "
        "machine works through its planned operations in the plan's order, with the model's failures, shifts and "
        "inspections; 409 when the schedule has no plan yet or names machines the model lacks",
    )
    plan_release: Literal["planned", "earliest"] = Field(
        "planned", description="with schedule_id: jobs start at their planned start, or at their release time"
    )
    plan_durations: Literal["plan", "variability", "speed"] = Field(
        "variability",
        description="with schedule_id: the plan's durations, or scaled by a draw of the machine's cycle time over "
        "its mean (variability) or over its ideal cycle time (speed)",
    )


class SimulationStartedOut(BaseModel):
    id: int = Field(description="the simulation's id (the same number as its job's)")
    job_id: int


class SimulationOut(BaseModel):
    id: int
    job_id: int
    line: str
    status: str = Field(description="the job's: queued, running, succeeded, failed, cancelled")
    progress: float
    message: str
    error: str | None
    model_version: int | None
    request: dict
    result: dict | None = Field(
        description="line, model_version, from_live, start, hours, replications, scenarios: the base first, each "
        "with its stats (mean, sd, ci_low, ci_high, n) of throughput_per_h, lead_time_s, wip, oee, output_oee, "
        "machines.<m>.utilisation/blocked/starved/down/oee..., buffers.<b>.mean, and its bottleneck shares. With a "
        "schedule_id: the scenarios' stats are the plan run's (makespan, weighted_tardiness, tardiness, late_jobs, "
        "scrapped, unfinished, downtime, failures, machines.<m>.utilisation/down/setup/waiting; times in plan units), "
        "each with its planned figures and jobs, and a plan section: schedule_id, schedule, objective, solver, "
        "time_unit_s, release, durations, planned (makespan, weighted_tardiness, tardiness, late_jobs, late), "
        "simulated (the base's stats of those figures), late_share (replications with a late job) and jobs (each "
        "job's planned_end, due, end and lateness stats, late_share, scrapped_share)"
    )
    created_at: Timestamp
