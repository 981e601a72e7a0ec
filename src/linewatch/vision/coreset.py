"""Greedy k-center coreset selection (PatchCore's memory-bank subsampling), exact and fast.

The classic loop measures every patch against every new center: O(N) work of D dimensions per step.
Here the triangle inequality skips patches that the new center cannot get closer to
(d(new, own center) >= 2 * distance to own center), so each step touches a few percent of the patches
and gives the same selection as the plain loop. ``StreamingCoreset`` keeps memory bounded on large
training sets by merge-and-reduce: the pool is cut back to the target size whenever it fills.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def greedy_coreset(
    points: torch.Tensor,
    n_select: int,
    proj_dim: int | None = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Indices of ``n_select`` points chosen by greedy k-center (farthest-point) selection.

    Distances are measured after a Gaussian random projection to ``proj_dim`` dimensions when the
    points have more (as in the PatchCore paper); ``None`` keeps the original space.
    """
    n = points.shape[0]
    if n_select >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    p = points.float()
    if proj_dim is not None and p.shape[1] > proj_dim:
        proj = torch.randn(p.shape[1], proj_dim, generator=g) / math.sqrt(proj_dim)
        p = p @ proj
    p = p.contiguous()
    sq = (p * p).sum(1)
    centers = torch.empty(n_select, p.shape[1])
    center_sq = torch.empty(n_select)
    selected = torch.empty(n_select, dtype=torch.long)
    first = int(torch.randint(n, (1,), generator=g))
    selected[0] = first
    centers[0] = p[first]
    center_sq[0] = sq[first]
    dist = torch.sqrt((sq - 2 * (p @ p[first]) + sq[first]).clamp_min_(0))
    assign = torch.zeros(n, dtype=torch.long)
    step = max(1, n_select // 100)
    for i in range(1, n_select):
        c = int(torch.argmax(dist))
        pc = p[c]
        selected[i] = c
        centers[i] = pc
        center_sq[i] = sq[c]
        # distance of the new center to every earlier center
        dc = torch.sqrt((center_sq[:i] - 2 * (centers[:i] @ pc) + sq[c]).clamp_min_(0))
        cand = torch.nonzero(dc[assign] < 2 * dist).squeeze(1)
        if cand.numel():
            dd = torch.sqrt((sq[cand] - 2 * (p[cand] @ pc) + sq[c]).clamp_min_(0))
            closer = dd < dist[cand]
            moved = cand[closer]
            dist[moved] = dd[closer]
            assign[moved] = i
        if progress is not None and i % step == 0:
            progress(i, n_select)
    if progress is not None:
        progress(n_select, n_select)
    return selected


class StreamingCoreset:
    """Collects patch features batch by batch into one preallocated pool of ``pool_limit`` rows and, when
    it is full, reduces it in place to ``target`` rows by greedy k-center (merge and reduce)."""

    def __init__(self, target: int, pool_limit: int = 400_000, proj_dim: int | None = 128, seed: int = 0):
        self.target = int(target)
        self.pool_limit = max(int(pool_limit), 2 * self.target)
        self.proj_dim = proj_dim
        self.seed = seed
        self._pool: torch.Tensor | None = None
        self._count = 0
        self.reductions = 0

    def add(self, features: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> None:
        features = features.float()
        if self._pool is None:
            self._pool = torch.empty(self.pool_limit, features.shape[1])
        start = 0
        while start < features.shape[0]:
            room = self.pool_limit - self._count
            if room == 0:
                self._reduce(self.target, progress)
                continue
            n = min(room, features.shape[0] - start)
            self._pool[self._count : self._count + n] = features[start : start + n]
            self._count += n
            start += n

    def _reduce(self, size: int, progress) -> None:
        idx = greedy_coreset(self._pool[: self._count], size, self.proj_dim, self.seed + self.reductions, progress)
        kept = self._pool[idx].clone()
        self._pool[: kept.shape[0]] = kept
        self._count = kept.shape[0]
        self.reductions += 1

    def finish(self, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        if self._pool is None or self._count == 0:
            raise ValueError("no features were added")
        self._reduce(min(self.target, self._count), progress)
        bank = self._pool[: self._count].clone()
        self._pool = None
        return bank
