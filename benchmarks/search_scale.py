"""Defect search at scale: the faiss HNSW index on synthetic vectors of the region embedding's dimension.

    python benchmarks/search_scale.py                       # 100k, defaults
    python benchmarks/search_scale.py --n 1000000
    python benchmarks/search_scale.py --n 100000 --data uniform --ef 64,128,256,512

Measures insert rate (``FaissIndex.add`` with payloads, batches of 10k), query latency p50/p95 (one query vector
at a time, unfiltered and with a station filter matching 1/3 of the points), recall@10 against exact search
(``faiss.knn``, brute-force inner product over the same vectors) and memory per vector (vectors + HNSW links +
row columns; payloads not counted).

Vectors (``--data``):
- ``spectrum`` (default): Gaussian vectors around a common mean, in a random basis, with eigenvalues falling
  as i^-alpha. Real region embeddings (bottle and synthetic defects, 137 vectors) have a mean of norm 0.6,
  an effective dimension of about 16 and a decay alpha of about 1.4; the default alpha 1.0 decays slower, i.e.
  is harder for HNSW than the real ones.
- ``uniform``: uniformly random directions, the worst case for any ANN index (no structure at all).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from linewatch.vision.embeddings import region_dim

# the default model's defect vectors: 176 residual channels (efficientnet_lite0's taps) + the extent code, and with
# search_vectors="crop" (the default since 2026-12-05) the crop's and the image's 176 channels each: 547
DIM = region_dim(176, 176, search_vectors="crop")


def make_vectors(n: int, dim: int, data: str, alpha: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if data == "uniform":
        return rng.standard_normal((n, dim), dtype=np.float32)
    basis_rng = np.random.default_rng(1234)  # the same distribution for base and queries
    basis, _ = np.linalg.qr(basis_rng.standard_normal((dim, dim)))
    mean = basis_rng.standard_normal(dim)
    mean *= 0.6 / np.linalg.norm(mean)
    scale = np.arange(1, dim + 1, dtype=np.float64) ** (-alpha / 2)
    scale *= np.sqrt((1 - 0.36) / (scale**2).sum())
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - s), dim)) * scale
        out[s : s + len(z)] = mean + z @ basis.T
    return out


def run(
    n: int, data: str, alpha: float, efs: list[int], m: int, ef_construction: int, n_queries: int, dim: int = DIM
) -> list[dict]:
    import faiss

    from linewatch.search import faiss_index as fi
    from linewatch.search.faiss_index import FaissIndex
    from linewatch.search.index import Filter, normalize

    base = make_vectors(n, dim, data, alpha, seed=0)
    queries = normalize(make_vectors(n_queries, dim, data, alpha, seed=1))
    stations = ("press-1", "press-2", "lathe")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index = FaissIndex(os.path.join(tmp, "idx"), dim, m=m, ef_construction=ef_construction)
        started = time.perf_counter()
        for s in range(0, n, 10_000):
            chunk = base[s : s + 10_000]
            payloads = [{"station": stations[i % 3], "time": float(i)} for i in range(s, s + len(chunk))]
            index.add(np.arange(s, s + len(chunk)), chunk, payloads)
        insert_s = time.perf_counter() - started
        mem = index.memory_bytes() / n
        base = normalize(base)
        _, truth = faiss.knn(queries, base, 10, metric=faiss.METRIC_INNER_PRODUCT)
        station_rows = np.flatnonzero(np.arange(n) % 3 == 1)
        _, sub = faiss.knn(queries, np.ascontiguousarray(base[station_rows]), 10, metric=faiss.METRIC_INNER_PRODUCT)
        ftruth = station_rows[sub]  # exact filtered top-10
        for ef in efs:
            index.ef_search = ef
            for label, where, want in (("none", None, truth), ("station (1/3)", Filter(station="press-2"), ftruth)):
                index.query(queries[0], 10, where)  # warm-up
                lat, rec = [], []
                for q, t in zip(queries, want, strict=True):
                    t0 = time.perf_counter()
                    hits = index.query(q, 10, where)
                    lat.append((time.perf_counter() - t0) * 1000)
                    rec.append(len({h.id for h in hits} & set(np.asarray(t).tolist())) / 10)
                rows.append(
                    {
                        "n": n,
                        "data": data if data == "uniform" else f"spectrum a={alpha}",
                        "dim": dim,
                        "M": m,
                        "efC": ef_construction,
                        "ef": ef or f"auto {fi.auto_ef(n)}",
                        "filter": label,
                        "insert_per_s": round(n / insert_s),
                        "p50_ms": round(float(np.percentile(lat, 50)), 3),
                        "p95_ms": round(float(np.percentile(lat, 95)), 3),
                        "recall@10": round(float(np.mean(rec)), 4),
                        "bytes_per_vector": round(mem),
                        "threads": faiss.omp_get_max_threads(),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--data", choices=("spectrum", "uniform"), default="spectrum")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--ef", default=None, help="efSearch values to try, comma separated; auto: the index's default")
    ap.add_argument("--m", type=int, default=None)
    ap.add_argument("--ef-construction", type=int, default=None)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument(
        "--dim", type=int, default=DIM, help=f"vector dimension (default {DIM}, the default model's; 195 without crops)"
    )
    args = ap.parse_args()
    from linewatch.search import faiss_index as fi

    efs = [None if x == "auto" else int(x) for x in args.ef.split(",")] if args.ef else [fi.EF_SEARCH]
    rows = []
    for n in args.n:
        rows += run(
            n,
            args.data,
            args.alpha,
            efs,
            args.m or fi.M,
            args.ef_construction or fi.EF_CONSTRUCTION,
            args.queries,
            args.dim,
        )
    print()
    print("| vectors | data | M / efC / ef | filter | insert /s | p50 ms | p95 ms | recall@10 | bytes/vector |")
    print("|---:|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['data']} | {r['M']} / {r['efC']} / {r['ef']} | {r['filter']} | {r['insert_per_s']:,} "
            f"| {r['p50_ms']} | {r['p95_ms']} | {r['recall@10']} | {r['bytes_per_vector']:,} |"
        )


if __name__ == "__main__":
    main()
