"""How label suggestions and similar-defect lists improve as reviewers label defects: precision@5 of the defect
type and suggestion accuracy against the number of reviewed images, with and without the metric learned from the
reviews (``linewatch.search.metric``).

    python benchmarks/search_reviews.py DATA_ROOT/mvtec_ad/bottle DATA_ROOT/magnetic_tile/magnetic_tile --synthetic \\
        [--reviews 10,20,40,80,160] [--splits 30] [--cache /tmp/lw-reviews]

Per category a PatchCore is trained with the defaults on train/good (kept under ``--cache`` with the vectors of its
defective test images, so a second run only re-counts). Then for each number n of reviews, ``--splits`` times:
n random defective images are "reviewed" (their true type known; at least two types among them) and every other
defective image is a query against those n only, as a station's suggestions are. Reported, averaged over splits:

- precision@5: the share of the query's 5 nearest reviewed images that have its type (fewer when n < 5);
- suggestion accuracy: the similarity-weighted vote of those 5 (as the service votes) names its type.

``--search-vectors`` picks the vectors (``crop``, the default since 2026-12-05, or ``regions``, the residual vectors
alone). "raw" ranks by the best region-to-region cosine similarity (today's index); "metric" fits the metric on the n
reviewed images' top regions and ranks in its space, from ``MIN_REVIEWS`` (20) reviews of two types on, as the
service does ("–" below). Chance is the share of the query's type among the reviewed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from linewatch.search.metric import ReviewMetric
from linewatch.vision.datasets import load_dataset


def category_vectors(
    root: Path, cache: Path, name: str, search_vectors: str = "crop"
) -> tuple[list[np.ndarray], np.ndarray]:
    """(defect vectors per image, labels) of a category's defective test images, the product's search vectors of
    the given kind, cached as npz."""
    from linewatch.vision.patchcore import PatchCore
    from linewatch.vision.saving import load, save

    out = cache / f"{name}-{search_vectors}.npz"
    if out.exists():
        z = np.load(out)
        counts = z["counts"]
        return list(np.split(z["defects"], np.cumsum(counts)[:-1])), z["labels"]
    ds = load_dataset(root)
    model = cache / f"{name}-model"
    det = load(model) if (model / "manifest.json").exists() else PatchCore().fit(ds.train)
    if not (model / "manifest.json").exists():
        save(det, model)
    det.params_["search_vectors"] = search_vectors
    samples = [s for s in ds.test if s.is_anomalous]
    defects = [p.embeddings.defects() for p in det.iter_predict([s.path for s in samples])]
    labels = np.array([s.label for s in samples])
    np.savez(out, defects=np.concatenate(defects), counts=[len(d) for d in defects], labels=labels)
    return defects, labels


def best_pair(q: list[np.ndarray], g: list[np.ndarray]) -> np.ndarray:
    """(len(q), len(g)) best cosine similarity over pairs of the images' vectors."""
    gv = np.concatenate(g)
    owner = np.repeat(np.arange(len(g)), [len(x) for x in g])
    out = np.full((len(q), len(g)), -np.inf, dtype=np.float32)
    for i, v in enumerate(q):
        col = (v @ gv.T).max(0)
        np.maximum.at(out[i], owner, col)
    return out


def score(sim: np.ndarray, g_labels: np.ndarray, q_labels: np.ndarray, k: int = 5) -> tuple[float, float]:
    """(precision@k, vote accuracy) of queries against a labelled gallery."""
    top = np.argsort(-sim, axis=1)[:, :k]
    hits = g_labels[top] == q_labels[:, None]
    right = []
    for i, row in enumerate(top):
        votes: dict[str, float] = {}
        for j in row:
            votes[g_labels[j]] = votes.get(g_labels[j], 0.0) + max(float(sim[i, j]), 0.0) + 1e-9
        right.append(max(votes, key=votes.get) == q_labels[i])
    return float(hits.mean()), float(np.mean(right))


def run(defects: list[np.ndarray], labels: np.ndarray, n: int, splits: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {"raw p@5": [], "metric p@5": [], "raw vote": [], "metric vote": [], "chance": []}
    done = 0
    while done < splits:
        pick = rng.permutation(len(labels))
        g, q = pick[:n], pick[n:]
        if len(set(labels[g])) < 2 or len(q) == 0:
            continue
        done += 1
        gl, ql = labels[g], labels[q]
        p, v = score(best_pair([defects[i] for i in q], [defects[i] for i in g]), gl, ql)
        out["raw p@5"].append(p)
        out["raw vote"].append(v)
        if ReviewMetric.enough(list(gl)):
            metric = ReviewMetric().fit(np.stack([defects[i][0] for i in g]), gl)
            p, v = score(metric.similarity([defects[i] for i in q], [defects[i][:1] for i in g]), gl, ql)
        else:  # what the service does with too few reviews: the plain vote
            p, v = np.nan, np.nan
        out["metric p@5"].append(p)
        out["metric vote"].append(v)
        out["chance"].append(float(np.mean([(gl == t).mean() for t in ql])))
    return {key: round(float(np.mean(val)), 3) for key, val in out.items()}


def cell(v: float) -> str:
    return "–" if np.isnan(v) else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="*", type=Path, help="MVTec-layout categories")
    ap.add_argument("--synthetic", action="store_true", help="also the synthetic generator's defects")
    ap.add_argument("--reviews", default="10,20,40,80,160")
    ap.add_argument("--splits", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lw-reviews")
    ap.add_argument(
        "--search-vectors", choices=("regions", "crop"), default="crop", help="the vectors' kind (default: crop)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    sets = [(p.name, p) for p in args.data]
    if args.synthetic:
        from linewatch.vision.synthetic import make_dataset

        root = args.cache / "synthetic-data"
        if not (root / "train").exists():
            make_dataset(root, n_train=40, n_test_good=0, n_test_defect=40, seed=1)
        sets.append(("synthetic", root))
    rows = []
    for name, root in sets:
        defects, labels = category_vectors(root, args.cache, name, args.search_vectors)
        for n in (int(x) for x in args.reviews.split(",")):
            if n >= len(labels):
                continue
            row = {"data": name, "images": len(labels), "types": len(set(labels)), "reviewed": n}
            row.update(run(defects, labels, n, args.splits, args.seed))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows))
        return
    print("| data | types | reviewed | p@5 raw | p@5 metric | suggestion raw | suggestion metric | chance |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['data']} | {r['types']} | {r['reviewed']} | {r['raw p@5']:.3f} | {cell(r['metric p@5'])} "
            f"| {r['raw vote']:.3f} | {cell(r['metric vote'])} | {r['chance']:.3f} |"
        )


if __name__ == "__main__":
    main()
