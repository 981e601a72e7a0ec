import numpy as np
import pytest
import torch

from linewatch.vision.coreset import StreamingCoreset, greedy_coreset


def _plain_greedy(p: torch.Tensor, k: int, first: int) -> list[int]:
    sel = [first]
    dist = ((p - p[first]) ** 2).sum(1)
    for _ in range(1, k):
        c = int(torch.argmax(dist))
        sel.append(c)
        dist = torch.minimum(dist, ((p - p[c]) ** 2).sum(1))
    return sel


def test_pruned_greedy_selects_what_the_plain_loop_selects():
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(20, 16, generator=g) * 5
    points = centers[torch.randint(20, (3000,), generator=g)] + torch.randn(3000, 16, generator=g)
    got = greedy_coreset(points, 200, proj_dim=None, seed=3).tolist()
    assert got == _plain_greedy(points, 200, got[0])
    assert len(set(got)) == 200


@pytest.mark.parametrize("skip_covered", [False, True])
def test_streaming_keeps_the_pool_bounded_and_covers_outliers(skip_covered):
    g = torch.Generator().manual_seed(0)
    sc = StreamingCoreset(target=100, pool_limit=1000, proj_dim=None, skip_covered=skip_covered)
    outlier = torch.full((1, 8), 50.0)
    for i in range(30):
        batch = torch.randn(200, 8, generator=g)
        if i == 7:
            batch = torch.cat([batch, outlier])
        sc.add(batch)
        assert sc._count <= 1000 and sc._pool.shape[0] == 1000
    bank = sc.finish()
    assert bank.shape == (100, 8)
    assert sc.reductions >= (2 if skip_covered else 5)
    assert torch.cdist(outlier, bank).min() < 1e-5  # a far-away patch always makes it into the bank


def _blobs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(30, 8, generator=g) * 4
    return centers[torch.randint(30, (n,), generator=g)] + torch.randn(n, 8, generator=g)


def _covering_radius(points: torch.Tensor, bank: torch.Tensor) -> float:
    return float(torch.cdist(points, bank).min(1).values.max())


def test_skipping_covered_patches_keeps_the_coreset_property():
    # a stream of 12,000 points through a pool of 1,000: the bank must still cover every point about as well
    # as exact greedy k-center on all of them at once (which is within 2x of the optimum), with the pool bounded
    points = _blobs(12_000, 4)
    sc = StreamingCoreset(target=60, pool_limit=1000, proj_dim=None, skip_covered=True)
    for batch in points.split(250):
        sc.add(batch)
        assert sc._count <= 1000
    bank = sc.finish()
    exact = points[greedy_coreset(points, 60, proj_dim=None, seed=0)]
    assert bank.shape == (60, 8)
    assert sc.skipped > 0.5 * sc.seen  # most of the stream never entered the pool...
    assert sc.reductions < 5  # ...so it was cut back a few times, not once every 1,000 points
    assert _covering_radius(points, bank) <= 2.0 * _covering_radius(points, exact)


def test_covered_check_matches_a_full_search_and_is_deterministic():
    points = _blobs(3000, 5)
    banks = []
    for _ in range(2):
        sc = StreamingCoreset(target=50, pool_limit=500, proj_dim=4, seed=2, head=8, skip_covered=True)
        for batch in points.split(300):
            sc.add(batch)
        if not banks:  # the head-first search answers as one search of the whole bank
            q = sc._project(points)
            d2 = ((q[:, None, :] + 0.5 * sc._bank_t_neg2.t()[None]) ** 2).sum(-1).amin(1)
            got = sc._uncovered(points)
            # the same sum of products in another order: only a point on the radius itself (within float
            # rounding, which differs between CPUs' kernels) may land on the other side
            differ = got != (d2 > sc._radius2)
            assert got.any() and not got.all()
            assert bool(((d2[differ] - sc._radius2).abs() <= 1e-4 * sc._radius2).all())
        banks.append(sc.finish())
    assert torch.equal(banks[0], banks[1])


def test_without_skipping_every_patch_enters_the_pool():
    points = _blobs(3000, 6)
    sc = StreamingCoreset(target=50, pool_limit=500, proj_dim=None, skip_covered=False)
    for batch in points.split(300):
        sc.add(batch)
    assert sc.skipped == 0 and sc.reductions == 6  # 3,000 points, 450 new rows per cut


def test_the_principal_axes_screen_keeps_the_plain_selection():
    """Points of 96 dimensions: candidates are first screened by their distance along 16 principal axes (a lower
    bound); the selection is still the plain loop's."""
    from linewatch.vision.coreset import _principal_head

    g = torch.Generator().manual_seed(2)
    centers = torch.randn(40, 96, generator=g) * 3
    points = centers[torch.randint(40, (4000,), generator=g)] + torch.randn(4000, 96, generator=g)
    assert _principal_head(points, torch.Generator().manual_seed(0)).shape == (4000, 16)
    got = greedy_coreset(points, 300, proj_dim=None, seed=4).tolist()
    assert got == _plain_greedy(points, 300, got[0])


def test_the_selection_does_not_depend_on_how_many_parts_scan_it():
    points = _blobs(5000, 7)
    one = greedy_coreset(points, 120, proj_dim=None, seed=1, threads=1)
    assert torch.equal(greedy_coreset(points, 120, proj_dim=None, seed=1, threads=3), one)
    assert one.tolist() == _plain_greedy(points, 120, int(one[0]))


def test_progress_is_reported_up_to_the_end():
    seen = []
    greedy_coreset(_blobs(2000, 8), 300, proj_dim=None, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (300, 300) and len(seen) > 50
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_the_covering_radius_is_a_full_searchs_and_the_tiers_cover_the_bank():
    """The radius searches the bank beyond its first tier only for the rows whose first-tier distance could still be
    the largest: the same value as a search of the whole bank for every row."""
    pool = _blobs(2000, 10)
    bank = pool[greedy_coreset(pool, 50, proj_dim=None, seed=1)]
    sc = StreamingCoreset(target=50, proj_dim=4, head=8, block=256, skip_covered=True)
    sc._cover(pool, bank)
    assert sc._tiers() == [0, 8, 16, 32, 50]
    q, b = sc._project(pool), sc._project(bank)
    d2 = torch.cdist(q, b).min(1).values ** 2
    assert sc._radius2 == pytest.approx(float(d2.max()), rel=1e-4)
    # every pooled row is within the radius, but the farthest one may land on either side of it by float rounding
    uncovered = sc._uncovered(pool)
    assert int(uncovered.sum()) <= 1 and bool(((d2[uncovered] - sc._radius2).abs() <= 1e-4 * sc._radius2).all())


def test_the_16_bit_principal_coordinates_keep_a_lower_bound_and_the_plain_selection():
    """The screen's principal coordinates are stored in 16 bits; less the margin, a distance measured on them never
    exceeds the true one, even when one far outlier makes the steps coarse, and the selection stays the plain loop's."""
    from linewatch.vision.coreset import _quantized_head

    rng = np.random.default_rng(3)
    head = rng.standard_normal((5000, 16)).astype(np.float32) * rng.uniform(0.01, 10, 16).astype(np.float32)
    head[7] *= 2000.0  # one outlier: the scale of every axis is set by it
    q, scale, margin = _quantized_head(head)
    assert q.dtype == np.int16 and margin > 0
    a, b = rng.integers(0, 5000, 20000), rng.integers(0, 5000, 20000)
    true = np.linalg.norm(head[a].astype(np.float64) - head[b], axis=1)
    coded = np.linalg.norm((q[a].astype(np.float64) - q[b]) * scale, axis=1)
    assert (coded - margin <= true).all()
    assert (np.abs(coded - true) <= margin).all()

    g = torch.Generator().manual_seed(6)
    centers = torch.randn(30, 64, generator=g) * 3
    points = centers[torch.randint(30, (3000,), generator=g)] + torch.randn(3000, 64, generator=g)
    points[11] *= 500.0
    got = greedy_coreset(points, 250, proj_dim=None, seed=2).tolist()
    assert got == _plain_greedy(points, 250, got[0])
