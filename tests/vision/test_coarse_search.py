"""PatchCore's coarse-to-fine search: every other patch searched, the rest interpolated, the highest re-searched."""

import numpy as np
import pytest
import torch

from linewatch.vision.patchcore import PatchCoreGraph, coarse_layout


class _Map(torch.nn.Module):
    def forward(self, d):
        return d

    def masked(self, d, h, w):  # no inspection area
        return d


def _graph(bank, step, refine, search="exact"):
    knn = torch.arange(bank.shape[0]).unsqueeze(1)
    return PatchCoreGraph(torch.nn.Identity(), bank, knn, _Map(), search, step, refine)


def _queries(h, w, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((2, h * w, d)).astype(np.float32)), rng


@pytest.mark.parametrize(("h", "w"), [(8, 8), (7, 10), (1, 5)])
def test_refining_every_patch_is_the_full_search(h, w):
    q, rng = _queries(h, w)
    bank = torch.from_numpy(rng.standard_normal((40, 6)).astype(np.float32))
    full = _graph(bank, 1, 0.0).search_patches(q, h, w)
    every = _graph(bank, 2, 1.0).search_patches(q, h, w)
    torch.testing.assert_close(every[0], full[0])
    assert torch.equal(every[1], full[1])


@pytest.mark.parametrize(("h", "w", "step"), [(8, 8, 2), (7, 10, 2), (9, 9, 3)])
def test_unsearched_patches_lie_between_searched_ones_and_the_highest_are_searched(h, w, step):
    q, rng = _queries(h, w)
    bank = torch.from_numpy(rng.standard_normal((40, 6)).astype(np.float32))
    full_d, full_i = _graph(bank, 1, 0.0).search_patches(q, h, w)
    dist, idx = _graph(bank, step, 0.0).search_patches(q, h, w)
    kept, others, parent, _ = coarse_layout(h, w, step, 0.0)
    torch.testing.assert_close(dist[:, kept], full_d[:, kept])
    assert torch.equal(idx[:, kept], full_i[:, kept])
    assert torch.equal(idx, idx[:, kept][:, parent])  # a patch left interpolated takes its parent's entry
    # bilinear between searched neighbours: never above the highest searched patch or below the lowest
    assert (dist.amax(1) <= full_d[:, kept].amax(1) + 1e-6).all()
    assert (dist.amin(1) >= full_d[:, kept].amin(1) - 1e-6).all()
    if step == 2:  # halfway between two searched patches: their mean
        grid = dist.reshape(2, h, w)
        torch.testing.assert_close(grid[:, 1, 0], (grid[:, 0, 0] + grid[:, 2, 0]) / 2)

    refined, ridx = _graph(bank, step, 0.25).search_patches(q, h, w)
    k = coarse_layout(h, w, step, 0.25)[3]
    assert k == round(0.25 * len(others))
    for b in range(2):
        top = others[torch.topk(dist[b, others], k).indices]
        torch.testing.assert_close(refined[b, top], full_d[b, top])
        assert torch.equal(ridx[b, top], full_i[b, top])
        rest = torch.tensor(sorted(set(others.tolist()) - set(top.tolist())), dtype=torch.long)
        torch.testing.assert_close(refined[b, rest], dist[b, rest])


def test_a_defect_peaking_between_searched_patches_is_found_by_the_refinement():
    h = w = 16
    rng = np.random.default_rng(1)
    bank = torch.from_numpy(rng.standard_normal((64, 4)).astype(np.float32))
    q = bank[torch.from_numpy(rng.integers(0, 64, h * w))].unsqueeze(0).clone()  # every patch is a bank entry
    # a defect peaking at an odd row and column, none of the searched quarter; its neighbours feel it a little, as
    # they do in the features (each patch's feature averages its 3 x 3 neighbourhood)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            q[0, (5 + dr) * w + 7 + dc] += 40.0 if dr == dc == 0 else 8.0
    coarse, _ = _graph(bank, 2, 0.0).search_patches(q, h, w)
    fine, _ = _graph(bank, 2, 0.1).search_patches(q, h, w)
    full, _ = _graph(bank, 1, 0.0).search_patches(q, h, w)
    assert int(full.argmax()) == 5 * w + 7
    assert float(coarse.max()) < 0.5 * float(full.max())  # the searched quarter alone misses the peak
    assert int(fine.argmax()) == 5 * w + 7 and float(fine.max()) == pytest.approx(float(full.max()), rel=1e-5)


def test_int8_search_goes_through_the_same_plan():
    q, rng = _queries(8, 8, d=16)
    bank = torch.from_numpy(rng.standard_normal((50, 16)).astype(np.float32))
    exact = _graph(bank, 2, 0.2).search_patches(q, 8, 8)
    fast = _graph(bank, 2, 0.2, "int8").search_patches(q, 8, 8)
    assert (fast[0] >= exact[0] - 1e-4).all() and (fast[0] - exact[0]).abs().max() <= 0.05 * float(exact[0].max())


@pytest.mark.parametrize("search", ["exact", "int8", "pca"])
@pytest.mark.parametrize(
    ("h", "w", "step", "refine"), [(8, 8, 1, 0.0), (7, 10, 2, 0.25), (9, 9, 3, 0.1), (1, 5, 2, 0.5)]
)
def test_the_feature_map_gives_what_its_patch_rows_give(h, w, step, refine, search):
    """The graph hands the search its (B, D, h, w) feature map, and only the patches searched become rows (a strided
    slice for the coarse grid, a gather for the refined ones and the image score's worst patch): the same distances,
    entries and scores, bit for bit, as from all the patch rows."""
    rng = np.random.default_rng(5)
    f = torch.from_numpy(rng.standard_normal((2, 40, h, w)).astype(np.float32))
    bank = torch.from_numpy(rng.standard_normal((160, 40)).astype(np.float32))
    knn = torch.from_numpy(np.argsort(rng.random((160, 3)), axis=0).astype(np.int64))
    knn[:, 0] = torch.arange(160)
    g = PatchCoreGraph(torch.nn.Identity(), bank, knn, _Map(), search, step, refine)
    rows = g.patches(f)[0]
    want_d, want_i = g.search_patches(rows, h, w)
    got_d, got_i = g.search_patches(f, h, w)
    assert torch.equal(got_d, want_d) and torch.equal(got_i, want_i)
    for got, want in zip(g.finish(f, got_d, got_i, h, w), g.finish(rows, want_d, want_i, h, w), strict=True):
        assert torch.equal(got, want)
    pos = torch.tensor([[0, h * w - 1], [h * w // 2, 1 % (h * w)]])
    assert torch.equal(g.rows_at(f, pos), g.rows_at(rows, pos))
