"""Content-addressed blob storage (images, heatmaps): a local directory or an S3-compatible bucket.

A blob's key is the SHA-256 hex digest of its bytes, so a put is idempotent and a key names one content forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from linewatch.errors import LinewatchError

_KEY = re.compile(r"[0-9a-f]{64}")


class BlobError(LinewatchError):
    """A blob operation that failed for a reason the caller can act on (bad key, bad URL, rejected request)."""


class BlobNotFound(BlobError):
    """No blob with this key."""


class BlobStoreUnavailable(BlobError):
    """The store cannot be reached or written (S3 down, directory missing or unwritable); the service answers 503."""


def blob_key(data: bytes) -> str:
    """The key ``put`` gives these bytes."""
    return hashlib.sha256(data).hexdigest()


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise BlobError(f"invalid blob key {key!r}: expected 64 lowercase hex characters (a SHA-256 digest)")
    return key


class BlobStore(ABC):
    """Where blobs live. Implementations raise only ``BlobError`` and its subclasses."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` and return its key; does nothing if that key is already stored."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Raises ``BlobNotFound`` if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """No error if absent."""

    @abstractmethod
    def ping(self) -> None:
        """Raises ``BlobStoreUnavailable`` unless the store can be read and written now."""

    @abstractmethod
    def url(self) -> str:
        """Where the blobs are, for logs and status pages (never includes credentials)."""


class FileBlobStore(BlobStore):
    """Blobs as files ``root/ab/cd/<key>``. Writes are atomic: temp file, fsync, rename."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def url(self) -> str:
        return self.root.absolute().as_uri()

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def _unavailable(self, action: str, exc: OSError) -> BlobStoreUnavailable:
        reason = exc.strerror or str(exc)
        return BlobStoreUnavailable(f"blob store {self.url()} unusable: cannot {action}: {reason}")

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        final = self._path(key)
        if final.is_file():
            return key
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{key[:8]}.", suffix=".tmp")
        except OSError as exc:
            raise self._unavailable(f"create a file under {final.parent}", exc) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._unavailable(f"write blob {key}", exc) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(final.parent)
        return key

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise BlobNotFound(f"blob {key} not found in {self.url()}") from exc
        except OSError as exc:
            raise self._unavailable(f"read blob {key}", exc) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except NotADirectoryError:
            return
        except OSError as exc:
            raise self._unavailable(f"delete blob {key}", exc) from exc

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".ping.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise self._unavailable(f"write to {self.root}", exc) from exc


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# S3 error codes that mean the store as a whole is unusable (not this one request).
_STORE_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "SlowDown",
    "Throttling",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
}


class S3BlobStore(BlobStore):
    """Blobs as objects ``<prefix>/<key>`` in an S3 or S3-compatible (MinIO, Ceph, moto) bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        if not bucket:
            raise BlobError("S3 blob store needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        config = Config(
            # A store that hangs answers 503 within about 2 x 5 s (two attempts), not 3 x 10 s: the read timeout
            # bounds each socket read or write of a request, not a whole (large) transfer.
            connect_timeout=3,
            read_timeout=5,
            retries={"mode": "standard", "total_max_attempts": 2},
            # Only checksum when S3 demands it: some S3-compatible servers reject botocore's default CRC headers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # Path-style addressing works with every S3-compatible server behind a custom endpoint.
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)

    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _object(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, action: str, exc: Exception, key: str | None = None) -> BlobError:
        """Translate a botocore exception; ``key`` set means a 404 is that blob missing."""
        from botocore.exceptions import ClientError

        where = self.url() + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if key is not None and (code in ("NoSuchKey", "NotFound", "404") or (status == 404 and not code)):
                return BlobNotFound(f"blob {key} not found in {where}")
            message = f"{code or status}: {err.get('Message') or 'no message'}"
            if status >= 500 or status in (403, 404) or code in _STORE_CODES:
                return BlobStoreUnavailable(f"blob store {where} unusable: cannot {action}: {message}")
            return BlobError(f"blob store {where} refused to {action}: {message}")
        return BlobStoreUnavailable(f"blob store {where} unreachable: cannot {action}: {exc}")

    def put(self, data: bytes) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = blob_key(data)
        name = self._object(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=name)
            return key
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # 404: not there yet. 403: the credentials may lack ListBucket, so a missing key reads as
            # forbidden; try the put, which fails with a clear error if writing is forbidden too.
            if status not in (403, 404):
                raise self._error(f"check blob {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._error(f"check blob {key}", exc) from exc
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType="application/octet-stream")
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"write blob {key}", exc) from exc
        return key

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._object(key)
        try:
            return self._client.get_object(Bucket=self.bucket, Key=name)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._error(f"read blob {key}", exc, key=key) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._object(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=name)
        except (BotoCoreError, ClientError) as exc:
            err = self._error(f"check blob {key}", exc, key=key)
            if isinstance(err, BlobNotFound):
                return False
            raise err from exc
        return True

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._object(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except (BotoCoreError, ClientError) as exc:
            err = self._error(f"delete blob {key}", exc, key=key)
            if isinstance(err, BlobNotFound):
                return
            raise err from exc

    def ping(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            err = self._error("reach the bucket", exc)
            if not isinstance(err, BlobStoreUnavailable):
                err = BlobStoreUnavailable(str(err))
            raise err from exc


def open_blob_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
) -> BlobStore:
    """``s3://bucket[/prefix]`` opens an S3 store; ``file:///abs/path`` or a plain path opens a directory store.

    The keyword arguments apply to S3 only.
    """
    accepted = "accepted forms: s3://bucket[/prefix], file:///absolute/path or a plain directory path"
    if not url or not url.strip():
        raise BlobError(f"empty blob store URL; {accepted}")
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        if not parsed.netloc:
            raise BlobError(f"blob store URL {url!r} names no bucket; {accepted}")
        return S3BlobStore(
            parsed.netloc,
            prefix=unquote(parsed.path),
            endpoint_url=endpoint_url,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
        )
    if scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise BlobError(f"blob store URL {url!r} is not a local absolute path; {accepted}")
        return FileBlobStore(Path(unquote(parsed.path)))
    if scheme == "" and "://" not in url:
        return FileBlobStore(Path(url))
    raise BlobError(f"unsupported blob store URL {url!r}; {accepted}")
