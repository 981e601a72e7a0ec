import errno
import hashlib
import os
import socket
from pathlib import Path

import pytest

from linewatch.store import blobs
from linewatch.store.blobs import (
    BlobError,
    BlobNotFound,
    BlobStoreUnavailable,
    FileBlobStore,
    S3BlobStore,
    open_blob_store,
)

CREDS = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}
BAD_KEYS = ["../../etc/passwd", "A" * 64, "a" * 63, "a" * 65, "g" * 64, "", "ab/cd"]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- FileBlobStore ---


def test_file_round_trip(tmp_path):
    store = FileBlobStore(tmp_path / "blobs")
    key = store.put(b"heatmap bytes")
    assert store.exists(key)
    assert store.get(key) == b"heatmap bytes"
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(BlobNotFound):
        store.get(key)
    store.delete(key)  # absent: no error


def test_file_key_is_sha256_and_layout_fans_out(tmp_path):
    store = FileBlobStore(tmp_path)
    data = os.urandom(1000)
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert (tmp_path / key[:2] / key[2:4] / key).read_bytes() == data


def test_file_put_is_idempotent_and_does_not_rewrite(tmp_path, monkeypatch):
    store = FileBlobStore(tmp_path)
    key = store.put(b"same")
    path = tmp_path / key[:2] / key[2:4] / key
    before = path.stat()

    def no_write(*a, **k):
        raise AssertionError("an existing blob was written again")

    monkeypatch.setattr(blobs.tempfile, "mkstemp", no_write)
    assert store.put(b"same") == key
    assert path.stat().st_ino == before.st_ino
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_file_put_leaves_no_temp_files(tmp_path):
    store = FileBlobStore(tmp_path)
    keys = {store.put(bytes([i]) * 100) for i in range(5)}
    assert [p.name for p in _files(tmp_path)] == sorted(keys)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_file_rejects_invalid_keys(tmp_path, key):
    store = FileBlobStore(tmp_path / "blobs")
    for op in (store.get, store.exists, store.delete):
        with pytest.raises(BlobError, match="invalid blob key"):
            op(key)


@pytest.mark.parametrize("fail", ["replace", "fsync"])
def test_file_crash_during_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch, fail):
    store = FileBlobStore(tmp_path)
    data = b"half written"
    key = hashlib.sha256(data).hexdigest()

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(blobs.os, fail, boom)
    with pytest.raises(BlobStoreUnavailable, match="No space left"):
        store.put(data)
    monkeypatch.undo()
    assert not store.exists(key)
    assert _files(tmp_path) == []  # the temp file was removed too
    assert store.put(data) == key  # and a later put succeeds
    assert store.get(key) == data


def test_file_store_on_a_regular_file_is_unavailable(tmp_path):
    root = tmp_path / "not-a-dir"
    root.write_bytes(b"x")
    store = FileBlobStore(root)
    with pytest.raises(BlobStoreUnavailable):
        store.ping()
    with pytest.raises(BlobStoreUnavailable):
        store.put(b"data")
    assert not store.exists("0" * 64)
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)


def test_file_ping_creates_a_missing_root(tmp_path):
    store = FileBlobStore(tmp_path / "a" / "b")
    store.ping()
    assert (tmp_path / "a" / "b").is_dir()
    assert _files(tmp_path) == []
    assert store.url() == (tmp_path / "a" / "b").as_uri()


# --- S3BlobStore against moto's S3 server on localhost ---


@pytest.fixture(scope="session")
def s3_endpoint(moto_s3):
    """The moto S3 server (tests/conftest.py) with a bucket "linewatch"; its endpoint URL."""
    moto_s3.client().create_bucket(Bucket="linewatch")
    return moto_s3.endpoint


@pytest.fixture
def s3_client(s3_endpoint, moto_s3):
    return moto_s3.client()


@pytest.fixture
def closed_endpoint():
    """A localhost port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_s3_round_trip(s3_endpoint):
    store = S3BlobStore("linewatch", prefix="rt", endpoint_url=s3_endpoint, **CREDS)
    store.ping()
    data = os.urandom(2048)
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.exists(key)
    assert store.get(key) == data
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # absent: no error


def test_s3_put_is_idempotent(s3_endpoint, monkeypatch):
    store = S3BlobStore("linewatch", prefix="idem", endpoint_url=s3_endpoint, **CREDS)
    key = store.put(b"same bytes")

    def no_put(**kw):
        raise AssertionError("an existing blob was uploaded again")

    monkeypatch.setattr(store._client, "put_object", no_put)
    assert store.put(b"same bytes") == key


def test_s3_missing_key_is_not_found(s3_endpoint):
    store = S3BlobStore("linewatch", endpoint_url=s3_endpoint, **CREDS)
    with pytest.raises(BlobNotFound):
        store.get("f" * 64)
    assert not store.exists("f" * 64)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_s3_rejects_invalid_keys(s3_endpoint, key):
    store = S3BlobStore("linewatch", endpoint_url=s3_endpoint, **CREDS)
    for op in (store.get, store.exists, store.delete):
        with pytest.raises(BlobError, match="invalid blob key"):
            op(key)


def test_open_blob_store_s3_puts_keys_under_the_prefix(s3_endpoint, s3_client):
    store = open_blob_store("s3://linewatch/plant-3/images", endpoint_url=s3_endpoint, **CREDS)
    assert isinstance(store, S3BlobStore)
    assert store.url() == "s3://linewatch/plant-3/images"
    key = store.put(b"an image")
    listed = s3_client.list_objects_v2(Bucket="linewatch", Prefix="plant-3/images/")
    assert [o["Key"] for o in listed["Contents"]] == [f"plant-3/images/{key}"]
    assert store.get(key) == b"an image"


def test_s3_missing_bucket_is_unavailable(s3_endpoint):
    store = S3BlobStore("no-such-bucket", endpoint_url=s3_endpoint, **CREDS)
    with pytest.raises(BlobStoreUnavailable):
        store.ping()
    with pytest.raises(BlobStoreUnavailable):
        store.put(b"data")


def test_s3_unreachable_endpoint_is_unavailable(closed_endpoint):
    store = S3BlobStore("linewatch", endpoint_url=closed_endpoint, **CREDS)
    with pytest.raises(BlobStoreUnavailable, match="unreachable"):
        store.ping()
    with pytest.raises(BlobStoreUnavailable):
        store.put(b"data")
    with pytest.raises(BlobStoreUnavailable):
        store.get("0" * 64)


# --- open_blob_store ---


def test_open_blob_store_file_forms(tmp_path):
    by_url = open_blob_store(tmp_path.as_uri())
    by_path = open_blob_store(str(tmp_path))
    assert isinstance(by_url, FileBlobStore)
    assert isinstance(by_path, FileBlobStore)
    assert by_url.root == by_path.root == tmp_path
    key = by_url.put(b"x")
    assert by_path.get(key) == b"x"


@pytest.mark.parametrize(
    "url", ["http://example.com/blobs", "ftp://host/x", "s3://", "s3:///prefix", "file://otherhost/x", "", "gs://b"]
)
def test_open_blob_store_rejects_other_urls(url):
    with pytest.raises(BlobError, match="accepted forms"):
        open_blob_store(url)
