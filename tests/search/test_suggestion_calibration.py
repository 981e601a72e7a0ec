"""The suggestion confidence is a calibrated probability: the calibration map (monotone, bounded, absent with few
outcomes), and on a generated set where the truth is known the reported confidence tracks how often it is right."""

import numpy as np
import pytest

from linewatch.search.calibration import MIN_OUTCOMES, fit, reliability


def test_map_is_monotone_and_never_certain():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 300)
    right = rng.uniform(0, 1, 300) < scores**2
    cal = fit(scores, right)
    grid = np.linspace(-0.5, 1.5, 401)
    out = np.array([cal(s) for s in grid])
    assert np.all(np.diff(out) >= 0)
    assert np.all((out > 0) & (out < 1))
    # all right or all wrong: still strictly inside (0, 1)
    assert 0 < fit(scores, np.ones(300, bool))(1.0) < 1
    assert 0 < fit(scores, np.zeros(300, bool))(0.0) < 1


def test_no_map_with_few_outcomes():
    assert fit([0.5] * (MIN_OUTCOMES - 1), [True] * (MIN_OUTCOMES - 1)) is None
    assert fit([], []) is None
    assert fit([0.5] * MIN_OUTCOMES, [True] * MIN_OUTCOMES) is not None


def test_reliability_of_known_cases():
    rows, ece, brier = reliability([0.95, 0.95, 0.15, 0.15], [True, False, False, False])
    assert [(n, acc) for _, _, acc, n in rows] == [(2, 0.0), (2, 0.5)]
    assert ece == pytest.approx((2 * 0.15 + 2 * 0.45) / 4)
    assert brier == pytest.approx((0.95**2 + 0.05**2 + 2 * 0.15**2) / 4)


@pytest.mark.parametrize("truth", [lambda s: s**3, lambda s: np.sqrt(s)])
def test_fitted_map_recovers_a_known_miscalibration(truth):
    """Scores whose chance of being right is a known function of them (over- or under-confident): mapped on fresh
    cases, the confidence matches the accuracy; the raw scores do not."""
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 1, 300)
    cal = fit(s, rng.uniform(0, 1, 300) < truth(s))
    test = rng.uniform(0, 1, 5000)
    right = rng.uniform(0, 1, 5000) < truth(test)
    _, raw_ece, raw_brier = reliability(test, right)
    _, ece, brier = reliability([cal(x) for x in test], right)
    assert raw_ece > 0.1
    assert ece < 0.05 and brier < raw_brier


def _store(ctx, vectors: np.ndarray, labels: list[str], reviewed: np.ndarray, station: str = "line") -> list[int]:
    """Inspections at ``station`` judged defective with these defect vectors; the ``reviewed`` ones labelled, into
    the index."""
    from sqlalchemy import func, select

    from linewatch.store.tables import Inspection, InspectionVectors, ModelVersion, Station

    with ctx.sessions() as s, s.begin():
        st = Station(name=station)
        mv = s.scalar(select(ModelVersion).where(ModelVersion.name == "m"))
        mv = mv or ModelVersion(name="m", method="patchcore", backbone="b", image_size=64)
        s.add_all([st, mv])
        s.flush()
        first = s.scalar(select(func.count()).select_from(Inspection)) or 0
        ids = []
        for i, (v, label) in enumerate(zip(vectors, labels, strict=True), start=first):
            insp = Inspection(
                station_id=st.id,
                model_id=mv.id,
                image_sha256=f"{i:064x}",
                image_phash="0" * 16,
                heatmap_sha256=f"{i:064x}",
                width=64,
                height=64,
                score=1.0,
                normalized_score=0.9,
                verdict="anomalous",
                regions=[],
                latency_ms=1.0,
                reviewed=bool(reviewed[i - first]),
                review_verdict="anomalous" if reviewed[i - first] else None,
                defect_type=label if reviewed[i - first] else None,
            )
            s.add(insp)
            s.flush()
            s.add(
                InspectionVectors(
                    inspection_id=insp.id,
                    space="test-space",
                    image=np.zeros(4, np.float32).tobytes(),
                    defects=v.astype(np.float32).tobytes(),
                    defect_dim=len(v),
                    from_regions=False,
                )
            )
            ids.append(insp.id)
    with ctx.sessions() as s:
        ctx.search.add(ctx.search.entries(s, ids))
    return ids


def test_reported_confidence_tracks_accuracy_on_a_generated_set(tmp_path):
    """Three defect types as overlapping clusters of unit vectors (the truth of every part known), 400 of 800
    reviewed: the confidence of the other 400 suggestions is what their accuracy is, bin by bin, and it was fitted
    on the reviewed ones (the vote share alone reads far from it here)."""
    from linewatch.api.app import build_context
    from linewatch.config import Settings
    from linewatch.services.searching import suggest

    ctx = build_context(Settings(data_dir=tmp_path))
    try:
        rng = np.random.default_rng(3)
        dim, n = 16, 800
        centres = rng.normal(0, 1, (3, dim))
        kinds = rng.integers(0, 3, n)
        vecs = centres[kinds] + rng.normal(0, 1.6, (n, dim))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        labels = [["scratch", "spot", "chip"][k] for k in kinds]
        reviewed = np.arange(n) % 2 == 0
        ids = _store(ctx, vecs, labels, reviewed)
        conf, share, right = [], [], []
        with ctx.sessions() as s:
            for i in np.flatnonzero(~reviewed):
                got = suggest(ctx.search, s, ids[i])
                assert got is not None and 0 < got.confidence < 1
                assert got.calibrated_on == reviewed.sum() and got.neighbours == 5
                conf.append(got.confidence)
                share.append(got.share)
                right.append(got.defect_type == labels[i])
        acc = np.mean(right)
        assert 0.45 < acc < 0.95  # neither trivial nor hopeless
        rows, ece, _ = reliability(conf, right, bins=5)
        _, share_ece, _ = reliability(share, right, bins=5)
        assert abs(np.mean(conf) - acc) < 0.05
        assert ece < 0.08 and share_ece > 0.15
        # more confident suggestions are right more often
        hi = np.array(conf) >= np.median(conf)
        assert np.mean(np.array(right)[hi]) > np.mean(np.array(right)[~hi])
    finally:
        ctx.engine.dispose()


def test_few_reviews_keep_the_smoothed_share(tmp_path):
    from linewatch.api.app import build_context
    from linewatch.config import Settings
    from linewatch.services.searching import suggest

    ctx = build_context(Settings(data_dir=tmp_path))
    try:
        rng = np.random.default_rng(4)
        vecs = rng.normal(0, 1, (12, 8))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        reviewed = np.arange(12) < 10
        ids = _store(ctx, vecs, ["spot", "chip"] * 6, reviewed)
        with ctx.sessions() as s:
            got = suggest(ctx.search, s, ids[11])
        assert got.calibrated_on == 0 and got.confidence == pytest.approx(got.share) and got.confidence < 1
    finally:
        ctx.engine.dispose()
