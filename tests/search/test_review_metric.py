"""The metric learned from reviewers' labels: what it refuses, that it pulls types together where plain cosine
similarity is fooled by how parts vary, and that a station's suggestions use it once it has enough reviews."""

import numpy as np
import pytest

from linewatch.errors import LinewatchError
from linewatch.search.metric import MIN_REVIEWS, ReviewMetric


def nuisance_set(n: int, seed: int, dim: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors whose type shows in a few weak directions, while large variation shared by all types (the
    part's pose, lighting) spans the others: plain cosine neighbours mostly follow the variation, not the type."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 3, n)
    centres = np.zeros((3, dim))
    centres[:, :3] = np.eye(3) * 1.5
    x = centres[kinds] + rng.normal(0, 0.5, (n, dim))
    x[:, 3:] += rng.normal(0, 3.0, (n, dim - 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.array(["scratch", "spot", "chip"])[kinds]


def knn_accuracy(sim: np.ndarray, g_labels: np.ndarray, q_labels: np.ndarray, k: int = 5) -> float:
    top = np.argsort(-sim, axis=1)[:, :k]
    right = []
    for i, row in enumerate(top):
        kinds, counts = np.unique(g_labels[row], return_counts=True)
        right.append(kinds[np.argmax(counts)] == q_labels[i])
    return float(np.mean(right))


def test_refuses_too_few_reviews_or_one_type():
    x, y = nuisance_set(40, 0)
    with pytest.raises(LinewatchError, match="20 reviewed defects of 2 types"):
        ReviewMetric().fit(x[: MIN_REVIEWS - 1], y[: MIN_REVIEWS - 1])
    with pytest.raises(LinewatchError, match="2 types"):
        ReviewMetric().fit(x, np.array(["spot"] * 40))
    with pytest.raises(LinewatchError, match="one label per vector"):
        ReviewMetric().fit(x, y[:-1])
    with pytest.raises(LinewatchError, match="not fitted"):
        ReviewMetric().transform(x)


def test_the_learned_space_separates_types_that_cosine_mixes():
    gx, gy = nuisance_set(40, 1)
    qx, qy = nuisance_set(300, 2)
    metric = ReviewMetric().fit(gx, gy)
    assert metric.transform(qx).shape == (300, 2)  # types - 1 dimensions
    raw = knn_accuracy(qx @ gx.T, gy, qy)
    learned = knn_accuracy(metric.similarity([v[None] for v in qx], [v[None] for v in gx]), gy, qy)
    assert raw < 0.5 and learned > 0.75, (raw, learned)
    sim = metric.similarity([qx[:3]], [gx[:1], gx[1:2]])
    assert sim.shape == (1, 2) and np.all((sim > 0) & (sim <= 1))


def test_a_station_with_enough_reviews_suggests_from_the_learned_space(tmp_path):
    """Station "a" has 40 reviewed defects and suggests through the metric (more of them right than the plain vote);
    station "b", with 10 of its own, keeps the plain vote: another station's reviews do not count for it."""
    from linewatch.api.app import build_context
    from linewatch.config import Settings
    from linewatch.services.searching import _vote, suggest
    from linewatch.store.tables import InspectionVectors

    from .test_suggestion_calibration import _store

    ctx = build_context(Settings(data_dir=tmp_path))
    try:
        x, y = nuisance_set(240, 3)
        reviewed = np.arange(240) < 40
        ids = _store(ctx, x, list(y), reviewed, station="a")
        bx, by = nuisance_set(30, 4)
        b_ids = _store(ctx, bx, list(by), np.arange(30) < 10, station="b")
        learned, plain = [], []
        with ctx.sessions() as s:
            types = sorted(set(y))
            for i in np.flatnonzero(~reviewed):
                got = suggest(ctx.search, s, ids[i])
                assert got.learned_from == 40 and got.calibrated_on > 0 and 0 < got.confidence < 1
                learned.append(got.defect_type == y[i])
                row = s.get(InspectionVectors, ids[i])
                plain.append(_vote(ctx.search, row, types, 5, ids[i])[0] == y[i])
            got_b = suggest(ctx.search, s, b_ids[20])
            assert got_b is not None and got_b.learned_from == 0
        assert np.mean(learned) > 0.75 and np.mean(learned) > np.mean(plain) + 0.3, (np.mean(learned), np.mean(plain))
    finally:
        ctx.engine.dispose()
