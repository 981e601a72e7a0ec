"""A small synchronous client for the linewatch inspection service, for scripts and cameras.

    from linewatch.client import Client

    with Client("http://linewatch:8000", api_key="lw_...") as lw:
        for result in lw.inspect("cam1", "part-001.png", "part-002.png"):
            print(result["id"], result["verdict"], result["normalized_score"])

Every failure (an HTTP error, an unreachable server, a timeout) is a ``ClientError`` carrying the server's
``detail`` message and the HTTP status code, if there was one.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from linewatch.errors import LinewatchError

ImageInput = str | Path | bytes | tuple[str, bytes]
TERMINAL_JOB_STATES = ("succeeded", "failed", "cancelled")


class ClientError(LinewatchError):
    """A request that failed. ``status_code`` is None when no HTTP response came back."""

    def __init__(self, message: str, status_code: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail if detail is not None else message


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] if text else response.reason_phrase
    if not isinstance(body, dict) or "detail" not in body:
        return str(body)[:200]
    detail = body["detail"]
    if not isinstance(detail, str):
        detail = str(detail)
    errors = body.get("errors")
    if errors:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', []))}: {e.get('msg', '')}" for e in errors[:5]]
        detail = f"{detail} ({'; '.join(parts)})"
    return detail


def _param(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _files(images: Iterable[ImageInput]) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = []
    for i, item in enumerate(images):
        if isinstance(item, bytes | bytearray):
            name, data = f"upload-{i}", bytes(item)
        elif isinstance(item, tuple):
            name, data = item
        else:
            path = Path(item)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise ClientError(f"cannot read {path}: {e.strerror or e}") from None
            name = path.name
        files.append(("files", (name, data, "application/octet-stream")))
    return files


class Client:
    """``token`` is a login token (see ``Client.login``); ``api_key`` an API key for machines."""

    def __init__(self, url: str, token: str | None = None, api_key: str | None = None, timeout: float = 30):
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ClientError(f"invalid server URL {url!r}: it must start with http:// or https://")
        self.url = url
        self.timeout = timeout
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if api_key:
            headers["X-API-Key"] = api_key
        self.token = token
        try:
            self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)
        except httpx.InvalidURL as e:
            raise ClientError(f"invalid server URL {url!r}: {e}") from None

    @classmethod
    def login(cls, url: str, username: str, password: str, timeout: float = 30) -> Client:
        """A client authenticated with a login token for this user."""
        client = cls(url, timeout=timeout)
        try:
            got = client.request("POST", "/api/v1/auth/login", json={"username": username, "password": password})
        except BaseException:
            client.close()
            raise
        client.token = got["access_token"]
        client._http.headers["Authorization"] = f"Bearer {client.token}"
        return client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as e:
            raise ClientError(f"cannot reach linewatch at {self.url}: {e}") from None
        except httpx.TimeoutException:
            raise ClientError(f"linewatch at {self.url} did not answer within {self.timeout} s") from None
        except httpx.HTTPError as e:
            raise ClientError(f"request to linewatch at {self.url} failed: {type(e).__name__}: {e}") from None
        if response.status_code >= 400:
            detail = _detail(response)
            raise ClientError(f"{detail} (HTTP {response.status_code})", response.status_code, detail)
        return response

    def request(self, method: str, path: str, **kwargs) -> Any:
        """Any API call (``path`` like ``/api/v1/...``; httpx keyword arguments); the decoded JSON body,
        or None for an empty one."""
        response = self._send(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{self.url} answered {method} {path} with something other than JSON: is it linewatch?",
                response.status_code,
            ) from None

    def _bytes(self, path: str) -> bytes:
        return self._send("GET", path).content

    # inspections

    def inspect(
        self, station: str, *images: ImageInput | list[ImageInput], retries: int = 2, retry_wait: float = 1.0
    ) -> list[dict]:
        """Score images with the station's active model. Each image is a file path, encoded bytes or a
        ``(filename, bytes)`` pair; a list of them is also accepted. All go in one request.

        The request carries a fresh ``Idempotency-Key``; when the service cannot be reached, does not answer in
        time or answers 503 (a part briefly down) it is sent again, up to ``retries`` more times, ``retry_wait``
        seconds apart (doubling): a retry of a request whose answer was lost gets the stored inspections back,
        never a second copy of them."""
        flat: list[ImageInput] = []
        for item in images:
            if isinstance(item, list):
                flat.extend(item)
            else:
                flat.append(item)
        if not flat:
            raise ClientError("no images to inspect")
        path = f"/api/v1/stations/{quote(station, safe='')}/inspect"
        files = _files(flat)
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        started = time.monotonic()
        for attempt in range(retries + 1):
            try:
                return self.request("POST", path, files=files, headers=headers)
            except ClientError as e:
                if e.status_code not in (None, 503) or not retries:
                    raise
                if attempt == retries:  # each try had its own timeout: say how long the whole wait was
                    waited = time.monotonic() - started
                    raise ClientError(
                        f"{e} (sent {attempt + 1} times over {waited:.0f} s)", e.status_code, e.detail
                    ) from None
            time.sleep(retry_wait * 2**attempt)
        raise AssertionError("unreachable")

    def inspections(self, **filters) -> dict:
        """One page, newest first: ``{"items": [...], "next_cursor": ...}``. Filters: station, verdict,
        reviewed, since, until, min_score, max_score, cursor, limit."""
        params = {k: _param(v) for k, v in filters.items() if v is not None}
        return self.request("GET", "/api/v1/inspections", params=params)

    def iter_inspections(self, **filters) -> Iterator[dict]:
        """Every matching inspection, newest first, following the cursors page by page."""
        filters = dict(filters)
        while True:
            page = self.inspections(**filters)
            yield from page["items"]
            if page.get("next_cursor") is None:
                return
            filters["cursor"] = page["next_cursor"]

    def inspection(self, inspection_id: int) -> dict:
        return self.request("GET", f"/api/v1/inspections/{int(inspection_id)}")

    def image(self, inspection_id: int) -> bytes:
        return self._bytes(f"/api/v1/inspections/{int(inspection_id)}/image")

    def heatmap(self, inspection_id: int) -> bytes:
        """The coloured anomaly map (at most 256 px on its longer side), PNG."""
        return self._bytes(f"/api/v1/inspections/{int(inspection_id)}/heatmap")

    def overlay(self, inspection_id: int) -> bytes:
        """The image with its anomaly map blended in and its regions boxed, PNG at the image's size."""
        return self._bytes(f"/api/v1/inspections/{int(inspection_id)}/overlay")

    def review(self, inspection_id: int, verdict: str, defect_type: str | None = None, note: str = "") -> dict:
        """Confirm or overturn a verdict ("good" or "anomalous"); the latest review counts."""
        body = {"verdict": verdict, "defect_type": defect_type, "note": note}
        return self.request("POST", f"/api/v1/inspections/{int(inspection_id)}/reviews", json=body)

    # datasets, training, models, stations

    def create_dataset(self, name: str) -> dict:
        return self.request("POST", "/api/v1/datasets", json={"name": name})

    def upload_images(self, dataset_id: int, paths: str | Path | Iterable[str | Path]) -> dict:
        """Good images (files, or zip files that are unpacked); ``{"added", "skipped", "images"}``."""
        if isinstance(paths, str | Path):
            paths = [paths]
        files = _files(paths)
        if not files:
            raise ClientError("no images to upload")
        return self.request("POST", f"/api/v1/datasets/{int(dataset_id)}/images", files=files)

    def train(self, dataset_id: int, **opts) -> dict:
        """Queue training; options: name, method, backbone, image_size. Returns the job."""
        return self.request("POST", "/api/v1/jobs/train", json={"dataset_id": dataset_id, **opts})

    def job(self, job_id: int) -> dict:
        return self.request("GET", f"/api/v1/jobs/{int(job_id)}")

    def wait_for_job(self, job_id: int, timeout: float = 600, poll: float = 0.5) -> dict:
        """The finished job once it succeeded; ClientError if it failed, was cancelled or is still running
        after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] == "succeeded":
                return job
            if job["status"] in TERMINAL_JOB_STATES:
                reason = job.get("error") or job.get("message") or "no reason given"
                raise ClientError(f"job {job_id} {job['status']}: {reason}")
            if time.monotonic() >= deadline:
                raise ClientError(
                    f"job {job_id} is still {job['status']} after {timeout:g} s ({job.get('progress', 0):.0%} done)"
                )
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    def activate(self, model_id: int, station: str) -> dict:
        """Make the model version the station's active model; returns the station."""
        return self.request("POST", f"/api/v1/models/{int(model_id)}/activate", json={"station": station})

    def calibrate(
        self,
        model_id: int,
        dataset_id: int | None = None,
        false_alarm_rate: float | None = None,
        name: str | None = None,
        station: str | None = None,
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
    ) -> dict:
        """Queue setting the version's thresholds again without training, as a new version: from a dataset's good
        images (ones the model was not trained on), from the known-good parts ``station`` inspected from ``since`` to
        ``until`` (the last hour by default), or with neither at another ``false_alarm_rate`` from the held-out
        scores it keeps. Returns the job; its ``result["model_id"]`` is the new version."""
        body = {
            "dataset_id": dataset_id,
            "false_alarm_rate": false_alarm_rate,
            "name": name,
            "station": station,
            "since": since.isoformat() if isinstance(since, dt.datetime) else since,
            "until": until.isoformat() if isinstance(until, dt.datetime) else until,
        }
        return self.request(
            "POST", f"/api/v1/models/{int(model_id)}/calibrate", json={k: v for k, v in body.items() if v is not None}
        )

    def import_model(self, ref: str, name: str | None = None) -> dict:
        """Queue importing a version of the service's MLflow Model Registry (``NAME``, ``NAME/VERSION`` or
        ``NAME@ALIAS``) as a model version. Returns the job; its ``result["model_id"]`` is the new version."""
        body = {"ref": ref, **({"name": name} if name is not None else {})}
        return self.request("POST", "/api/v1/registry/import", json=body)

    def import_machine_model(self, machine: str, model_dir: str | Path) -> dict:
        """A sensor model folder ``linewatch sensors fit --out`` wrote (any table method) as the machine's next model
        version, ready to activate (``activate_machine_model``); its sensors must be the machine's, by name."""
        from linewatch.core.modelfiles import zip_dir

        folder = Path(model_dir)
        if not (folder / "manifest.json").is_file():
            raise ClientError(f"{folder} is not a model folder (no manifest.json): `linewatch sensors fit --out`")
        files = [("file", (f"{folder.name or 'model'}.zip", zip_dir(folder), "application/zip"))]
        return self.request("POST", f"/api/v1/machines/{quote(machine, safe='')}/models/import", files=files)

    def activate_machine_model(self, model_id: int) -> dict:
        """Make a machine's model version the one that scores its readings from now; returns the machine."""
        return self.request("POST", f"/api/v1/machine-models/{int(model_id)}/activate")

    def publish_model(self, model_id: int, name: str, alias: str | None = None) -> dict:
        """Push a ready model version to the service's MLflow Model Registry as a new version of ``name``: the
        registered ``version`` and the ``run_id`` holding its files."""
        body = {"name": name, **({"alias": alias} if alias is not None else {})}
        return self.request("POST", f"/api/v1/models/{int(model_id)}/publish", json=body)

    def drift(self, station: str, last: int | None = None) -> dict:
        """The station's drift watch: do its ``last`` parts (500 by default) still score as the good parts its
        model's thresholds were set on? ``["level"]`` is ok, watch, drift or unknown; ``["reason"]`` says why."""
        params = {"last": int(last)} if last is not None else None
        return self.request("GET", f"/api/v1/stations/{quote(station, safe='')}/drift", params=params)

    def drift_history(self, station: str, limit: int = 50) -> list[dict]:
        """The changes of the station's drift level the service's watch found, the newest first."""
        return self.request(
            "GET", f"/api/v1/stations/{quote(station, safe='')}/drift/history", params={"limit": int(limit)}
        )

    def models(self) -> list[dict]:
        return self.request("GET", "/api/v1/models")

    def stations(self) -> list[dict]:
        return self.request("GET", "/api/v1/stations")

    def create_station(self, name: str) -> dict:
        return self.request("POST", "/api/v1/stations", json={"name": name})

    def create_api_key(self, name: str, role: str) -> dict:
        """Admin only. The secret is in ``["key"]`` and is shown only this once."""
        return self.request("POST", "/api/v1/api-keys", json={"name": name, "role": role})
