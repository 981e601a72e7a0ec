"""Greedy k-center coreset selection (PatchCore's memory-bank subsampling), exact and fast.

The classic loop measures every patch against every new center: O(N) work of D dimensions per step.
Here the triangle inequality skips patches that the new center cannot get closer to
(d(new, own center) >= 2 * distance to own center), so each step touches a few percent of the patches
and gives the same selection as the plain loop (up to float rounding between near-equal distances). The loop is
compiled with numba, and each step scans the points in one part per thread. ``StreamingCoreset`` keeps memory
bounded on large training sets by merge-and-reduce: the pool is cut back to the target size whenever it fills.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import torch

from linewatch.vision.heap import release_freed_memory


def greedy_coreset(
    points: torch.Tensor,
    n_select: int,
    proj_dim: int | None = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
) -> torch.Tensor:
    """Indices of ``n_select`` points chosen by greedy k-center (farthest-point) selection.

    Distances are measured after a Gaussian random projection to ``proj_dim`` dimensions when the
    points have more (as in the PatchCore paper); ``None`` keeps the original space. Each step scans the points
    in ``threads`` parts at once (default: torch's thread count, one per 50,000 points at most), each part one
    compiled loop (``_scan``); the selection does not depend on the number of parts.
    """
    n = points.shape[0]
    if n_select >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    p = points.float()
    if proj_dim is not None and p.shape[1] > proj_dim:
        proj = torch.randn(p.shape[1], proj_dim, generator=g) / math.sqrt(proj_dim)
        p = p @ proj
    first = int(torch.randint(n, (1,), generator=g))
    head = _principal_head(p, g)  # (n, m): the points' first principal coordinates
    pn = p.contiguous().numpy()
    hn, hscale, margin = _quantized_head(head.numpy() if head is not None else np.zeros((n, 0), np.float32))
    del head
    selected = np.empty(n_select, np.int64)
    dist = np.full(n, np.inf, np.float32)  # each point's distance to its nearest center so far
    assign = np.zeros(n, np.int32)  # ... and that center's step
    dc = np.zeros(n_select, np.float32)  # the new center's distance to each earlier center
    centers = np.empty((n_select, pn.shape[1]), np.float32)  # the centers' rows, in order: read in sequence
    parts = max(1, threads or min(torch.get_num_threads(), n // 50_000 + 1))  # small sets: one part
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    step = max(1, n_select // 100)
    center_distances, scan = _compiled()
    workers = ThreadPoolExecutor(parts - 1) if parts > 1 else None
    try:
        cur = first
        for i in range(n_select):
            selected[i] = cur
            centers[i] = pn[cur]
            center_distances(centers, i, dc)
            args = (pn, hn, hscale, margin, dist, assign, dc, cur, i)
            rest = [workers.submit(scan, *args, bounds[k], bounds[k + 1]) for k in range(1, parts)] if workers else []
            best, cur = scan(*args, bounds[0], bounds[1])
            for fut in rest:  # the first of equal maxima, as argmax would pick
                b, a = fut.result()
                if b > best:
                    best, cur = b, a
            if progress is not None and i and i % step == 0:
                progress(i, n_select)
    finally:
        if workers is not None:
            workers.shutdown()
    if progress is not None:
        progress(n_select, n_select)
    return torch.from_numpy(selected)


@cache
def _compiled():
    """The loop's two kernels compiled by numba (its machine code is cached on disk). Imported on first use: numba
    and its LLVM runtime take about 50 MB more in a process, which only training needs."""
    import numba

    jit = numba.njit(cache=True, nogil=True, fastmath=True)
    return jit(_center_distances), jit(_scan)


def _center_distances(centers, i, out):  # pragma: no cover - compiled
    """out[j] = distance of center i to center j < i. The centers' rows are kept in one array of their own: read in
    sequence, not scattered over the points (0.55 s of a 4,096-center selection when they were)."""
    d = centers.shape[1]
    for j in range(i):
        s = np.float32(0.0)
        for t in range(d):
            v = centers[j, t] - centers[i, t]
            s += v * v
        out[j] = math.sqrt(s)


def _scan(p, head, scale, margin, dist, assign, dc, c, i, lo, hi):  # pragma: no cover - compiled
    """Points lo:hi after center c (step i) joined: those it is closer to move to it. Returns the largest remaining
    distance and its point (the first of equals).

    The triangle inequality skips a point that the new center cannot get closer to (its distance to the point's own
    center is at least twice the point's distance to that center), and the distance along the first principal axes
    (``head``, a lower bound of the whole distance: an orthogonal projection) skips most of the rest after reading
    16 coordinates. The head is stored in 16 bits (``_quantized_head``): ``margin`` bounds what that rounding can
    take off a distance, and a small relative margin keeps float rounding on the safe side, so the bound never skips
    a point the whole distance would move. On magnetic_tile's textured patches about half the points pass the first
    test at each step, a sixth to a tenth of those the second, and few of those move (one in four in the first
    steps, fewer than one in fifty after the 500th)."""
    d = p.shape[1]
    m = head.shape[1]
    best = np.float32(-1.0)
    arg = lo
    for k in range(lo, hi):
        dk = dist[k]
        if dc[assign[k]] < 2 * dk:
            lower = np.float32(0.0)
            for t in range(m):
                v = np.float32(head[k, t] - head[c, t]) * scale[t]
                lower += v * v
            bound = dk * np.float32(1 + 1e-4) + margin
            if lower < bound * bound:
                s = np.float32(0.0)
                for t in range(d):
                    v = p[k, t] - p[c, t]
                    s += v * v
                dd = np.float32(math.sqrt(s))
                if dd < dk:
                    dist[k] = dd
                    assign[k] = i
                    dk = dd
        if dk > best:
            best = dk
            arg = k
    return best, arg


def _quantized_head(head: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """(int16 coordinates, float32 scale per axis, margin) of the (n, m) principal coordinates: head ~= q * scale.
    Rounding moves each coordinate by at most half a step (0.51 with the division's own rounding), so a point moves
    by at most 0.51 * |scale| and a distance between two by twice that: ``margin``. A distance measured on the 16-bit
    coordinates, less the margin, is still a lower bound of the true one. Half the bytes of float32 to read at each
    step of the selection, in its most read array: one reduction of magnetic_tile's 400,000 patches 10-20 % faster,
    the same selection (docs/benchmarks.md)."""
    peak = np.abs(head).max(0, initial=np.float32(0.0))
    scale = np.where(peak > 0, peak / np.float32(32000.0), np.float32(1.0)).astype(np.float32)
    q = np.round(head / scale).astype(np.int16)
    margin = 2.0 * 0.51 * float(np.sqrt((scale.astype(np.float64) ** 2).sum()))  # 0 with no axes
    return q, scale, np.float32(margin)


def _principal_head(p: torch.Tensor, g: torch.Generator, dims: int = 16, sample: int = 65_536) -> torch.Tensor | None:
    """The points' coordinates along their first ``dims`` principal axes (estimated on a sample), or None when
    the points have too few dimensions for that to save work. Any orthonormal axes give a valid lower bound of
    distances; principal ones make it tight."""
    n, d = p.shape
    if d < 2 * dims:
        return None
    rows = p if n <= sample else p[torch.randperm(n, generator=g)[:sample]]
    centred = (rows - rows.mean(0)).double()
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    axes = vectors[:, -dims:].float().contiguous()
    return (p @ axes).contiguous()


class StreamingCoreset:
    """Collects patch features batch by batch into one preallocated pool of ``pool_limit`` rows and, when
    it is full, reduces it in place to ``target`` rows by greedy k-center (merge and reduce).

    With ``skip_covered`` (PatchCore's default since it was checked on bottle and magnetic_tile), once the pool
    has been reduced, a new patch only enters the pool when it is farther from every bank entry than the bank's
    covering radius (the largest distance of any pooled patch to its nearest bank entry, measured after that
    reduction). Patches inside that radius are already as well represented as the ones the bank was chosen from, and
    greedy k-center would not pick them over what is already farther away; dropping them leaves the pool to the rare
    patches, so it fills far less often. Up to the first reduction (about 100 images at the defaults) nothing
    changes. Distances are measured after one fixed random projection to ``proj_dim`` dimensions, in blocks of rows.
    """

    def __init__(
        self,
        target: int,
        pool_limit: int = 400_000,
        proj_dim: int | None = 128,
        seed: int = 0,
        skip_covered: bool = False,
        block: int = 4096,
        head: int = 512,
    ):
        self.target = int(target)
        self.pool_limit = max(int(pool_limit), 2 * self.target)
        self.proj_dim = proj_dim
        self.seed = seed
        self.skip_covered = skip_covered
        self.block = int(block)
        self.head = int(head)
        self._pool: torch.Tensor | None = None
        self._count = 0
        self.reductions = 0
        self.seen = 0  # patches offered
        self.skipped = 0  # patches dropped as covered
        self._proj: torch.Tensor | None = None
        self._bank_t_neg2: torch.Tensor | None = None  # (-2 * projected bank)^T, (proj_dim, target)
        self._bank_sq: torch.Tensor | None = None
        self._radius2 = 0.0

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self._proj is None:
            return x
        return x @ self._proj

    def _nearest2(self, q: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Squared distance of projected rows to their nearest bank entry among entries lo:hi."""
        d2 = torch.addmm(self._bank_sq[lo:hi], q, self._bank_t_neg2[:, lo:hi]).amin(1)
        return d2 + (q * q).sum(1)

    def _tiers(self) -> list[int]:
        """Bank entry bounds of the tiers searched in turn: the first ``head`` entries, then twice as many each time.
        The bank is in greedy order, so its first entries already cover most rows."""
        n = self._bank_sq.shape[0]
        bounds, hi = [0], min(self.head, n)
        while True:
            bounds.append(hi)
            if hi >= n:
                return bounds
            hi = min(2 * hi, n)

    def _uncovered(self, x: torch.Tensor) -> torch.Tensor:
        """Which rows are farther than the covering radius from every bank entry. Each tier of the bank (``_tiers``)
        is searched only for the rows the tiers before it left uncovered: the same answer as one search of the whole
        bank, at a fraction of the work."""
        out = torch.empty(x.shape[0], dtype=torch.bool)
        bounds = self._tiers()
        for s in range(0, x.shape[0], self.block):
            q = self._project(x[s : s + self.block])
            far = torch.ones(q.shape[0], dtype=torch.bool)
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                rest = torch.nonzero(far).squeeze(1)
                if not rest.numel():
                    break
                far[rest] = self._nearest2(q[rest], lo, hi) > self._radius2
            out[s : s + self.block] = far
        return out

    def add(self, features: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> None:
        features = features.float()
        self.seen += features.shape[0]
        if self._pool is None:
            self._pool = torch.empty(self.pool_limit, features.shape[1])
        checked = -1  # the bank (by reduction count) the remaining features were last checked against
        while features.shape[0]:
            if self._bank_sq is not None and checked != self.reductions:
                keep = self._uncovered(features)
                self.skipped += features.shape[0] - int(keep.sum())
                features = features[keep]
                checked = self.reductions
                continue
            room = self.pool_limit - self._count
            if room == 0:
                self._reduce(self.target, progress, cover=self.skip_covered)
                continue
            n = min(room, features.shape[0])
            self._pool[self._count : self._count + n] = features[:n]
            self._count += n
            features = features[n:]

    def _reduce(self, size: int, progress, cover: bool = False) -> None:
        release_freed_memory()  # the reduction's projected copy of the pool is the largest array of a training
        idx = greedy_coreset(self._pool[: self._count], size, self.proj_dim, self.seed + self.reductions, progress)
        kept = self._pool[idx].clone()
        if cover:
            self._cover(self._pool[: self._count], kept)
        self._pool[: kept.shape[0]] = kept
        self._count = kept.shape[0]
        self.reductions += 1

    def _cover(self, pool: torch.Tensor, bank: torch.Tensor) -> None:
        """Remember the bank (projected) and its covering radius over the pool it was chosen from."""
        d = bank.shape[1]
        if self._proj is None and self.proj_dim is not None and d > self.proj_dim:
            g = torch.Generator().manual_seed(self.seed + 7919)
            self._proj = torch.randn(d, self.proj_dim, generator=g) / math.sqrt(self.proj_dim)
        pb = self._project(bank)
        self._bank_t_neg2 = (-2.0 * pb).t().contiguous()
        self._bank_sq = (pb * pb).sum(1)
        self._radius2 = self._covering_radius2(pool)

    def _covering_radius2(self, pool: torch.Tensor) -> float:
        """The largest squared distance of a pool row to its nearest bank entry. The first tier of the bank gives each
        row an upper bound of that distance; rows are then searched against the rest in order of their bound, until
        the bound falls below the largest distance found (no row after it can exceed that): the same radius as a
        search of the whole bank for every row, at a fraction of the work."""
        head = self._tiers()[1]
        blocks = range(0, pool.shape[0], self.block)
        upper = torch.cat([self._nearest2(self._project(pool[s : s + self.block]), 0, head) for s in blocks])
        if head >= self._bank_sq.shape[0]:
            return float(upper.max())
        order = torch.argsort(upper, descending=True)
        best = 0.0
        for s in range(0, order.shape[0], self.block):
            rows = order[s : s + self.block]
            if float(upper[rows[0]]) <= best:
                break
            rest = self._nearest2(self._project(pool[rows]), head)
            best = max(best, float(torch.minimum(upper[rows], rest).max()))
        return best

    def finish(self, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        if self._pool is None or self._count == 0:
            raise ValueError("no features were added")
        self._reduce(min(self.target, self._count), progress)
        bank = self._pool[: self._count].clone()
        self._pool = None
        self._bank_t_neg2 = self._bank_sq = None
        return bank
