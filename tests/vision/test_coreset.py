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


def test_streaming_keeps_the_pool_bounded_and_covers_outliers():
    g = torch.Generator().manual_seed(0)
    sc = StreamingCoreset(target=100, pool_limit=1000, proj_dim=None)
    outlier = torch.full((1, 8), 50.0)
    for i in range(30):
        batch = torch.randn(200, 8, generator=g)
        if i == 7:
            batch = torch.cat([batch, outlier])
        sc.add(batch)
        assert sc._count <= 1000 and sc._pool.shape[0] == 1000
    bank = sc.finish()
    assert bank.shape == (100, 8)
    assert sc.reductions >= 5
    assert torch.cdist(outlier, bank).min() < 1e-5  # a far-away patch always makes it into the bank
