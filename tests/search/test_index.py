"""The search index: faiss HNSW (embedded) and Qdrant (local mode), one contract."""

import json

import numpy as np
import pytest

from linewatch.search.faiss_index import FaissIndex
from linewatch.search.index import Filter, SearchIndexError, point_id, split_point_id
from linewatch.search.service import index_from_settings, search_grouped

DIM = 24
STATIONS = ("press-1", "press-2", "lathe")


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, DIM))
    vecs = centres[rng.integers(0, 12, n)] + 0.4 * rng.standard_normal((n, DIM))
    payloads = [
        {
            "station": STATIONS[i % 3],
            "verdict": "anomalous" if i % 2 else "good",
            "defect_type": ("scratch", "dent", None)[i % 5 % 3],
            "time": 1_700_000_000.0 + i,
            "path": f"img{i}.png",
            "inspection_id": i // 2,
        }
        for i in range(n)
    ]
    return np.arange(n) * 7 + 3, vecs.astype(np.float32), payloads


def _exact(ids, vecs, payloads, q, k, where=None):
    v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    q = q / np.linalg.norm(q)
    ok = np.array([where is None or where.matches(p) for p in payloads])
    sims = np.where(ok, v @ q, -np.inf)
    order = np.argsort(-sims)[: min(k, int(ok.sum()))]
    return ids[order].tolist()


def _qdrant(tmp_path, dim=DIM):
    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install 'linewatch[search]')")
    from linewatch.search.qdrant_index import QdrantIndex

    return QdrantIndex(dim, path=tmp_path / "qdrant")


def _reopen_qdrant(index, tmp_path):
    from linewatch.search.qdrant_index import QdrantIndex

    index.close()
    return QdrantIndex(path=tmp_path / "qdrant")


@pytest.fixture(params=["faiss", "qdrant"])
def backend(request, tmp_path):
    if request.param == "faiss":
        return FaissIndex(tmp_path / "idx", DIM), lambda idx: (idx.save(), FaissIndex(tmp_path / "idx"))[1]
    return _qdrant(tmp_path), lambda idx: _reopen_qdrant(idx, tmp_path)


def test_add_query_remove_persist(backend):
    index, reopen = backend
    ids, vecs, payloads = _data(300)
    index.add(ids, vecs, payloads)
    assert index.count() == 300
    hits = index.query(vecs[10], k=5)
    assert hits[0].id == ids[10] and hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert hits[0].payload["path"] == "img10.png"
    assert [h.id for h in hits] == _exact(ids, vecs, payloads, vecs[10], 5)
    assert all(hits[i].similarity >= hits[i + 1].similarity for i in range(4))
    assert index.remove([ids[10], ids[11], 999_999]) == 2
    assert index.count() == 298
    assert ids[10] not in [h.id for h in index.query(vecs[10], k=20)]
    assert index.get([ids[10], ids[12]]) == [None, payloads[12]]
    # adding an existing id replaces its vector and payload
    index.add([ids[12]], vecs[200:201], [{**payloads[12], "path": "moved.png"}])
    assert index.count() == 298
    top = index.query(vecs[200], k=2)
    assert {h.id for h in top} == {ids[12], ids[200]}
    index = reopen(index)
    assert index.count() == 298
    again = index.query(vecs[200], k=2)
    assert {h.id for h in again} == {ids[12], ids[200]}
    assert index.get([ids[12]])[0]["path"] == "moved.png"
    assert ids[10] not in [h.id for h in index.query(vecs[10], k=20)]


@pytest.mark.parametrize(
    "where",
    [
        Filter(station="press-2"),
        Filter(verdict="anomalous", station=["press-1", "lathe"]),
        Filter(defect_type="scratch"),
        Filter(since=1_700_000_100.0, until=1_700_000_250.0),
        Filter(station="lathe", verdict="good", defect_type="dent", since=1_700_000_050),
        Filter(station="nowhere"),
    ],
)
def test_filters_match_exact_filtered_search(backend, where):
    index, _ = backend
    ids, vecs, payloads = _data(600)
    index.add(ids, vecs, payloads)
    want_count = sum(where.matches(p) for p in payloads)
    assert index.count(where) == want_count
    for qi in (0, 77, 301):
        hits = index.query(vecs[qi], k=10, where=where)
        assert all(where.matches(h.payload) for h in hits)
        assert [h.id for h in hits] == _exact(ids, vecs, payloads, vecs[qi], 10, where)


def test_datetime_filters_are_utc():
    import datetime as dt

    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    f = Filter(since=t.replace(tzinfo=None), until=t + dt.timedelta(hours=1))
    assert f.matches({"time": t.timestamp()}) and not f.matches({"time": t.timestamp() + 3600})
    assert not f.matches({})


def _random(n, dim, seed):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _recall(index, base, queries, k=10, where_mask=None, where=None):
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ b.T
    if where_mask is not None:
        sims[:, ~where_mask] = -np.inf
    truth = np.argsort(-sims, axis=1)[:, :k]
    got = index.query_batch(queries, k, where)
    return np.mean([len(set(t.tolist()) & {h.id for h in g}) / k for t, g in zip(truth, got, strict=True)])


def test_hnsw_recall_against_exact_search(tmp_path):
    base = _random(20_000, 64, 0)  # uniformly random directions: no structure helps the graph
    queries = _random(200, 64, 1)
    index = FaissIndex(tmp_path / "r", 64)
    index.add(np.arange(len(base)), base, [{"station": f"s{i % 10}"} for i in range(len(base))])
    assert _recall(index, base, queries) >= 0.95
    # a broad filter goes through HNSW with a selector (force it by a low exact limit), a narrow one is exact
    mask = np.arange(len(base)) % 10 < 5
    broad = Filter(station=[f"s{i}" for i in range(5)])
    index.exact_limit = 1000
    assert _recall(index, base, queries, where_mask=mask, where=broad) >= 0.95
    narrow = np.arange(len(base)) % 10 == 3
    index.exact_limit = 20_000
    assert _recall(index, base, queries, where_mask=narrow, where=Filter(station="s3")) == 1.0


def test_removing_most_points_compacts_and_stays_correct(tmp_path):
    ids, vecs, payloads = _data(3000, seed=2)
    index = FaissIndex(tmp_path / "c", DIM)
    index.add(ids, vecs, payloads)
    gone = ids[:2500]
    assert index.remove(gone) == 2500
    assert index._index.ntotal == 500  # rebuilt from the live rows
    keep = ids[2500:]
    for qi in (2500, 2900):
        hits = index.query(vecs[qi], k=5)
        assert [h.id for h in hits] == _exact(keep, vecs[2500:], payloads[2500:], vecs[qi], 5)
    index.save()
    assert FaissIndex(tmp_path / "c").count() == 500


def test_a_failed_save_leaves_the_previous_index(tmp_path, monkeypatch):
    ids, vecs, payloads = _data(100)
    index = FaissIndex(tmp_path / "a", DIM)
    index.add(ids[:50], vecs[:50], payloads[:50])
    index.save()
    index.add(ids[50:], vecs[50:], payloads[50:])

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError):
        index.save()
    monkeypatch.undo()
    assert FaissIndex(tmp_path / "a").count() == 50
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_input_is_a_clear_error(tmp_path):
    index = FaissIndex(tmp_path / "e", DIM)
    with pytest.raises(SearchIndexError, match="dimension"):
        index.add([1], np.zeros((1, DIM + 1)))
    with pytest.raises(SearchIndexError, match="repeat"):
        index.add([1, 1], np.ones((2, DIM)))
    with pytest.raises(SearchIndexError, match="NaN"):
        index.add([1], np.full((1, DIM), np.nan))
    assert index.query(np.ones(DIM), k=3) == []
    with pytest.raises(SearchIndexError, match="no search index"):
        FaissIndex(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SearchIndexError, match="not a linewatch search index"):
        FaissIndex(tmp_path / "file", DIM)
    index.add([1], np.ones((1, DIM)))
    index.save()
    with pytest.raises(SearchIndexError, match="not 8"):
        FaissIndex(tmp_path / "e", 8)
    meta = (tmp_path / "e" / "meta.json").read_text()
    for edit in ({"vocab": None}, {"vocab": []}, {"dim": None}, {"info": 3}):
        (tmp_path / "e" / "meta.json").write_text(json.dumps({**json.loads(meta), **edit}))
        with pytest.raises(SearchIndexError, match="not a readable search index"):
            FaissIndex(tmp_path / "e")
    (tmp_path / "e" / "meta.json").write_text(meta)
    (tmp_path / "e" / "rows.npz").write_bytes(b"garbage")
    with pytest.raises(SearchIndexError, match="not a readable search index"):
        FaissIndex(tmp_path / "e")


def test_grouped_search_returns_distinct_inspections(backend):
    index, _ = backend
    ids, vecs, payloads = _data(400)
    index.add(ids, vecs, payloads)
    groups = search_grouped(index, vecs[[4, 5]], k=6, group_key="inspection_id")
    keys = [g.key for g in groups]
    assert len(keys) == 6 == len(set(keys))
    assert keys[0] == 2 and groups[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert all(groups[i].similarity >= groups[i + 1].similarity for i in range(5))
    only = search_grouped(index, vecs[4], k=3, where=Filter(station="lathe"), group_key="inspection_id")
    assert all(g.hit.payload["station"] == "lathe" for g in only)


def test_point_ids_round_trip():
    assert split_point_id(point_id(12345)) == (12345, None)
    assert split_point_id(point_id(12345, 0)) == (12345, 0)
    assert split_point_id(point_id(7, 41)) == (7, 41)
    assert len({point_id(1), point_id(1, 0), point_id(2)}) == 3


def test_settings_select_the_backend(tmp_path, monkeypatch):
    pytest.importorskip("pydantic_settings", reason="the service extra is not installed")
    from linewatch.config import Settings

    monkeypatch.delenv("LINEWATCH_SEARCH_BACKEND", raising=False)
    s = Settings(data_dir=tmp_path)
    index = index_from_settings(s, DIM)
    assert isinstance(index, FaissIndex) and index.path == tmp_path / "search" / "regions"
    s = Settings(data_dir=tmp_path, search_backend="qdrant")
    with pytest.raises(SearchIndexError, match="LINEWATCH_QDRANT_URL"):
        index_from_settings(s, DIM)
    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")
    s = Settings(data_dir=tmp_path, search_backend="qdrant", qdrant_url="http://127.0.0.1:9")
    with pytest.raises(SearchIndexError, match="cannot open the Qdrant index"):
        index_from_settings(s, DIM)
