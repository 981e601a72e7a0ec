"""PatchCore (Roth et al., CVPR 2022): a coreset memory bank of locally aggregated patch features of good
images; a patch's anomaly score is its distance to the nearest bank entry."""

from __future__ import annotations

import math
from functools import lru_cache

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from linewatch.vision.area import cell_weights
from linewatch.vision.coreset import StreamingCoreset
from linewatch.vision.detector import Detector, Progress
from linewatch.vision.embeddings import grid_pool
from linewatch.vision.features import PatchFeatures
from linewatch.vision.maps import AnomalyMap
from linewatch.vision.methods import PatchCoreParams


class _QuantizedProduct(torch.autograd.Function):
    """``a @ b + bias`` in 8 bits: ``a`` quantized with a fixed scale and zero point (uint8, as ONNX's
    QuantizeLinear: values outside the range saturate), ``b`` given as int8 columns with a scale each. The export is
    QuantizeLinear and ONNX Runtime's ``com.microsoft.MatMulIntegerToFloat`` (integer kernels, VNNI where the CPU
    has it); here the same quantized values in one float32 product (equal up to float rounding). A fixed scale keeps
    an image's scores independent of the other images in its batch."""

    @staticmethod
    def forward(ctx, a, a_scale, a_zero, b_q, b_scale, b_zero, bias):  # noqa: ARG004 - b_zero is for the export
        zero = a_zero.float()
        a_q = torch.clamp(torch.round(a / a_scale) + zero, 0.0, 255.0) - zero
        # the scales folded into the small operands: one product with the bias, no pass over the (rows x bank) result
        return torch.addmm(bias, a_q * a_scale, b_q.float() * b_scale)

    @staticmethod
    def symbolic(g, a, a_scale, a_zero, b_q, b_scale, b_zero, bias):
        a_q = g.op("QuantizeLinear", a, a_scale, a_zero)
        out = g.op("com.microsoft::MatMulIntegerToFloat", a_q, b_q, a_scale, b_scale, a_zero, b_zero, bias)
        out.setType(a.type().with_sizes([None, None]))  # (rows of a, bank entries); float32 like a
        return out


def quantize_range(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, uint8 zero point) mapping the range of ``values`` (and 0) onto 0..255."""
    lo = torch.clamp(values.min(), max=0.0)
    hi = torch.clamp(values.max(), min=0.0)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).float()
    return scale, torch.clamp(torch.round(-lo / scale), 0, 255).to(torch.uint8)


# the bank's int8 columns use 7 bits (-63..63): CPUs without VNNI (AVX2 only) multiply uint8 by int8 with
# ``vpmaddubsw``, which adds two products into an int16 and saturates there (255 * 127 * 2 > 32767); ONNX Runtime's
# kernels then pick other entries than the same product computed exactly (121 of 1,152 patches on a noise image).
# 255 * 63 * 2 = 32,130 always fits, so every CPU computes the same product, as ONNX Runtime's reduce_range does.
BANK_LEVELS = 63


def quantize_columns(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 matrix, float32 scale per column) of a float matrix, symmetric on 7 bits: m ~= q * scale."""
    scale = m.abs().amax(0) / BANK_LEVELS
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(torch.round(m / scale), -BANK_LEVELS, BANK_LEVELS).to(torch.int8), scale.float()


# the k nearest entries of a row of a search's product (the 8-bit search's two, the principal-axes search's four) are
# found group by group: the minimum of each group of ``NEAREST_GROUP`` consecutive entries (ReduceMin), the k groups
# with the lowest, then the k lowest of those groups' entries. The same entries as one TopK over the whole row, at a
# fraction of ONNX Runtime's TopK cost: the two nearest of 1,331 rows against 2,048 entries 2.6 -> 1.7 ms, against
# 4,096 entries 9.2 -> 2.5 ms (one thread)
NEAREST_GROUP = 32


def k_smallest(values: torch.Tensor, k: int, group: int = NEAREST_GROUP) -> torch.Tensor:
    """(R, k) column indices of the ``k`` smallest values of each row of ``values`` (R, M), M a multiple of ``group``
    (at least ``k`` groups), nearest first: ``torch.topk(values, k, largest=False).indices`` by groups. The k smallest
    values lie in the k groups with the lowest minima (a group holding one of them has its minimum at or below the
    k-th smallest)."""
    r, m = values.shape
    groups = values.reshape(r, m // group, group)
    best = torch.topk(groups.amin(2), k, dim=1, largest=False).indices  # (R, k) the k groups with the lowest
    many = torch.gather(groups, 1, best.unsqueeze(-1).expand(r, k, group)).reshape(r, k * group)
    pos = torch.topk(many, k, dim=1, largest=False).indices  # (R, k) into those groups' entries
    return torch.gather(best, 1, torch.div(pos, group, rounding_mode="floor")) * group + pos % group


# ``search="pca"``: candidates from the product along the bank's first principal axes, then measured exactly. On a CPU
# without VNNI (AVX2 only) ONNX Runtime's 8-bit product is hardly faster than float32 (1,331 patches x 176 dims x 2,048
# entries: 27 against 31 ms), while along 64 axes it takes 13 ms; the 4 nearest there hold the true nearest entry more
# often than the 8-bit product's two do (``python benchmarks/vision_search_pca.py``)
PCA_AXES = 64
PCA_CANDIDATES = 4


def principal_axes(bank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (D,), axes (D, k)) of the bank's ``k`` principal axes (largest variance last), in float64 for a stable
    eigendecomposition."""
    mean = bank.double().mean(0)
    c = bank.double() - mean
    _, vectors = torch.linalg.eigh(c.T @ c)  # ascending eigenvalues
    return mean.float(), vectors[:, -k:].float().contiguous()


def pad_to_groups(columns: torch.Tensor, bias: torch.Tensor, minimum: int = 4, scale: torch.Tensor | None = None):
    """(grouped, columns, bias, scale) of a search's product ``q @ columns + bias`` (columns: one per bank entry) made
    ready for ``k_smallest``: a bank of at least ``minimum`` groups is padded to whole groups with
    zero columns (scale 1) whose bias no product reaches, so they are never among the nearest; a smaller one is not
    grouped and stays as it is (a TopK over the row)."""
    m = columns.shape[1]
    grouped = m >= minimum * NEAREST_GROUP
    pad = (-m) % NEAREST_GROUP if grouped else 0
    if pad:
        columns = torch.cat([columns, torch.zeros(columns.shape[0], pad, dtype=columns.dtype)], 1)
        bias = torch.cat([bias, torch.full((pad,), 1e30, dtype=bias.dtype)])
        if scale is not None:
            scale = torch.cat([scale, torch.ones(pad, dtype=scale.dtype)])
    return grouped, columns, bias, scale


@lru_cache(maxsize=8)
def _cell_order(h: int, w: int, p: int) -> torch.Tensor:
    """Patch indices (row-major on the h x w grid) sorted by their p x p cell, row-major within each cell."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cell = (rows // p) * (w // p) + cols // p
    return torch.argsort(cell.reshape(-1) * (h * w) + torch.arange(h * w))


@lru_cache(maxsize=8)
def coarse_layout(h: int, w: int, step: int, refine: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The coarse-to-fine search's fixed plan for an h x w patch grid: (positions scored first, every ``step``-th
    patch in each direction; the other positions; each position's scored parent, as an index into the first;
    how many of the others are re-scored exactly)."""
    # numpy, not torch: made while an export traces the graph, they must enter it as constants
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    on = ((rows % step == 0) & (cols % step == 0)).reshape(-1)
    kept, others = np.flatnonzero(on), np.flatnonzero(~on)
    parent = ((rows // step) * math.ceil(w / step) + cols // step).reshape(-1)
    k = int(round(refine * len(others)))
    return torch.from_numpy(kept), torch.from_numpy(others), torch.from_numpy(parent.astype(np.int64)), k


def _refine_keys(values: torch.Tensor) -> torch.Tensor:
    """(B, n) int64 ranking keys of the interpolated distances, all distinct: the value rounded down to 1/1024 of
    the image's highest, then the position (earlier first). PyTorch and ONNX Runtime round floats differently, and a
    near-tie (a flat background: equal values) ranked by the raw floats could refine other patches in each; with
    these keys both refine the same ones unless a value lies within rounding of a 1/1024 step."""
    n = values.shape[1]
    peak = torch.clamp(values.amax(1, keepdim=True), min=1e-12)
    level = torch.floor(values / peak * 1024.0).to(torch.int64)
    return level * n + torch.arange(n - 1, -1, -1, dtype=torch.int64)


class PatchCoreGraph(nn.Module):
    """The whole PatchCore scoring path: image -> (image scores, anomaly maps, feature grids, residual grids).

    The grids are the search embeddings' raw material (``linewatch.vision.embeddings``): the patch features and
    the patch features minus their nearest bank entry, average-pooled to a coarse grid, from this same pass.

    Nearest neighbours come from ``nearest`` here (what ONNX exports: an exact float32 product, or the int8 one);
    ``finish`` takes them from anywhere, so the eager path of an exact model uses faiss and shares everything else.
    """

    def __init__(
        self,
        features: PatchFeatures,
        bank: torch.Tensor,
        bank_knn: torch.Tensor,
        anomaly_map,
        search: str = "exact",
        step: int = 1,
        refine: float = 0.0,
    ):
        super().__init__()
        self.features = features
        self.search = search
        self.grouped = False  # the 8-bit or principal-axes search's nearest found by groups (``pad_to_groups``)
        self.step = step
        self.refine = refine
        self.register_buffer("bank", bank.contiguous())
        self.register_buffer("bank_sq", (bank * bank).sum(1))
        self.register_buffer("bank_t_neg2", (-2.0 * bank).t().contiguous(), persistent=False)
        self.register_buffer("bank_knn", bank_knn.long())
        self.candidates = 2  # the 8-bit search's candidates; the principal-axes search's: PCA_CANDIDATES
        if search == "pca":
            k = min(PCA_AXES, bank.shape[1])
            mean, axes = principal_axes(bank, k)
            centred = bank - mean
            t_neg2 = (-2.0 * (centred @ axes)).t().contiguous()  # (k, M)
            bias = (centred * centred).sum(1)  # |b - mean|^2: with |q - mean|^2 left out, the same ranking as
            # |q - b|^2 would give were q and b alike off the axes
            self.candidates = min(PCA_CANDIDATES, t_neg2.shape[1])
            self.grouped, t_neg2, bias, _ = pad_to_groups(t_neg2, bias, max(4, self.candidates))
            self.register_buffer("pca_mean", mean, persistent=False)
            self.register_buffer("pca_axes", axes, persistent=False)
            self.register_buffer("pca_t_neg2", t_neg2, persistent=False)
            self.register_buffer("pca_bias", bias, persistent=False)
        if search == "int8":
            b_q, b_scale = quantize_columns(self.bank_t_neg2)
            # patches are quantized on the bank's own range: the greedy coreset holds the training set's extremes
            q_scale, q_zero = quantize_range(self.bank)
            self.register_buffer("query_scale", q_scale, persistent=False)
            self.register_buffer("query_zero", q_zero, persistent=False)
            # the bank padded to whole groups for ``k_smallest`` (a bank of fewer than four groups is not grouped)
            self.grouped, b_q, bias, b_scale = pad_to_groups(b_q, self.bank_sq, scale=b_scale)
            self.register_buffer("bank_q", b_q, persistent=False)
            self.register_buffer("bank_q_scale", b_scale, persistent=False)
            self.register_buffer("bank_q_zero", torch.zeros_like(b_q[0]), persistent=False)
            self.register_buffer("bank_q_bias", bias, persistent=False)
        self.anomaly_map = anomaly_map

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        return self.patches(self.features(x))

    @staticmethod
    def patches(f: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, D, h, w) features as (B, h*w, D) patch rows, with h and w."""
        b, d, h, w = f.shape
        return f.permute(0, 2, 3, 1).reshape(b, h * w, d), h, w

    def nearest(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared distance to and index of the nearest bank entry, per patch: (B, N) each.

        |q - b|^2 = |b|^2 - 2 q.b + |q|^2: one fused matrix product with the bank term as its bias, the
        minimum over the bank, and |q|^2 added to the minimum only (it is the same for every b).

        With ``search="int8"`` the product runs in 8 bits (``_QuantizedProduct``, about 2x faster in ONNX Runtime
        on CPUs with integer dot-product instructions) and only picks the two nearest entries; their distances are
        then measured exactly and the nearer is kept. A quantization error can only pick an entry that is nearly as
        close as the nearest one. With ``search="pca"`` the product is taken along the bank's ``PCA_AXES`` principal
        axes and picks ``PCA_CANDIDATES`` entries, measured exactly the same way.
        """
        b, n, d = q.shape
        flat = q.reshape(b * n, d)
        if self.search in ("int8", "pca"):
            if self.search == "int8":
                q_args = (self.query_scale, self.query_zero, self.bank_q, self.bank_q_scale, self.bank_q_zero)
                partial = _QuantizedProduct.apply(flat, *q_args, self.bank_q_bias)
            else:
                partial = torch.addmm(self.pca_bias, (flat - self.pca_mean) @ self.pca_axes, self.pca_t_neg2)
            # the nearest in 8 bits (or along the principal axes), then the nearest of them measured exactly: a query
            # element on a rounding boundary quantizes one step apart in PyTorch and ONNX Runtime (their features
            # differ by float rounding), which can swap two entries that the 8-bit product finds nearly equally near
            k = min(self.candidates, self.bank.shape[0])
            cand = k_smallest(partial, k) if self.grouped else torch.topk(partial, k, dim=1, largest=False).indices
            diff = flat.unsqueeze(1) - torch.index_select(self.bank, 0, cand.reshape(-1)).reshape(b * n, k, d)
            d2c = (diff * diff).sum(-1)
            best = torch.argmin(d2c, dim=1, keepdim=True)
            idx = torch.gather(cand, 1, best).squeeze(1)
            return torch.gather(d2c, 1, best).reshape(b, n), idx.reshape(b, n)
        partial = torch.addmm(self.bank_sq, flat, self.bank_t_neg2)  # (B*N, M)
        best, idx = torch.topk(partial, 1, dim=1, largest=False)
        d2 = best.squeeze(1) + (flat * flat).sum(1)
        return d2.reshape(b, n), idx.squeeze(1).reshape(b, n)

    @staticmethod
    def rows_at(q: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """(B, k, D) rows of the patches at positions ``pos`` (B, k) of ``q``: (B, h*w, D) patch rows, or the
        (B, D, h, w) feature map they come from (then only those patches are transposed to rows)."""
        if q.dim() == 3:
            return torch.gather(q, 1, pos.unsqueeze(-1).expand(-1, -1, q.shape[-1]))
        b, d = q.shape[0], q.shape[1]
        cols = torch.gather(q.reshape(b, d, -1), 2, pos.unsqueeze(1).expand(-1, d, -1))  # (B, D, k)
        return cols.transpose(1, 2)

    def search_patches(self, q: torch.Tensor, h: int, w: int, nearest=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance to and index of the nearest bank entry for the (B, h*w) patches of an h x w grid, from their
        (B, h*w, D) rows or from the (B, D, h, w) feature map itself. From the map, only the patches searched are
        transposed to rows: with a coarse-to-fine ``step`` a quarter of them and the refined ones, not the whole map
        (bottle's graph: 0.6 ms per image of transposing on one thread, ``docs/benchmarks.md``).

        With ``step`` 1 every patch is searched. With ``step`` s > 1 (coarse to fine) every s-th patch in each
        direction is searched; the others' distances are interpolated bilinearly between them, and the ``refine``
        share of the others with the highest interpolated distance is searched too. An interpolated value lies
        between searched ones, so the map's peak is always a searched patch. Each patch's feature averages its
        3 x 3 neighbourhood (``neighbourhood``), so a defect at an unsearched patch also raises the searched patches
        around it, and the refinement then searches it. A patch left interpolated takes its parent's nearest entry
        (for the residual grids).
        ``nearest`` (default: ``self.nearest``) maps (B, n, D) patches to (squared distances, indices)."""
        nearest = nearest or self.nearest
        if self.step == 1:
            d2, idx = nearest(q if q.dim() == 3 else self.patches(q)[0])
            return torch.sqrt(torch.clamp(d2, min=0.0)), idx
        b = q.shape[0]
        s, h, w = self.step, int(h), int(w)  # the input size is fixed in an export: constants there
        n = h * w
        kept, others, parent, k = coarse_layout(h, w, s, self.refine)
        # every s-th patch in each direction, in ``kept``'s order (row-major): a strided slice of the map
        coarse = torch.index_select(q, 1, kept) if q.dim() == 3 else self.patches(q[:, :, ::s, ::s])[0]
        kd2, kidx = nearest(coarse)
        kdist = torch.sqrt(torch.clamp(kd2, min=0.0))
        kh, kw = math.ceil(h / s), math.ceil(w / s)
        up = F.interpolate(
            kdist.reshape(b, 1, kh, kw), size=((kh - 1) * s + 1, (kw - 1) * s + 1), mode="bilinear", align_corners=True
        )
        up = F.pad(up, (0, w - up.shape[-1], 0, h - up.shape[-2]), mode="replicate").reshape(b, n)
        up = self.anomaly_map.masked(up, h, w)  # no refinement spent outside an inspection area
        dist = up.scatter(1, kept.unsqueeze(0).expand(b, -1), kdist)  # the searched values exactly, not re-sampled
        idx = torch.index_select(kidx, 1, parent)
        if k:
            top = torch.topk(_refine_keys(torch.index_select(up, 1, others)), k, dim=1).indices  # into ``others``
            pos = others[top]
            rd2, ridx = nearest(self.rows_at(q, pos))
            dist = dist.scatter(1, pos, torch.sqrt(torch.clamp(rd2, min=0.0)))
            idx = idx.scatter(1, pos, ridx)
        return dist, idx

    def finish(self, q: torch.Tensor, dist: torch.Tensor, idx: torch.Tensor, h: int, w: int):
        """(image scores, anomaly maps) from the patches' distances to and indices of their nearest bank entries,
        dist and idx (B, h*w); ``q``: the patch rows or the feature map, as ``search_patches`` takes them."""
        b = dist.shape[0]
        dist = self.anomaly_map.masked(dist, h, w)  # outside an inspection area: 0, never the worst patch
        # image score: the most anomalous patch, re-weighted by how isolated its nearest bank entry is
        # among its own neighbours in the bank (eq. 7 of the paper)
        worst = torch.argmax(dist, dim=1, keepdim=True)  # (B, 1)
        s_star = torch.gather(dist, 1, worst).squeeze(1)
        if self.bank_knn.shape[1] > 1:
            m_star = torch.gather(idx, 1, worst).squeeze(1)  # (B,)
            support = self.bank_knn[m_star]  # (B, k), support[:, 0] is m_star itself
            feat = self.rows_at(q, worst)  # (B, 1, D)
            diff = self.bank[support] - feat  # (B, k, D)
            dists = torch.sqrt(torch.clamp((diff * diff).sum(-1), min=0.0))
            weight = 1.0 - torch.softmax(dists, dim=1)[:, 0]
            score = weight * s_star
        else:
            score = s_star
        return score, self.anomaly_map(dist.reshape(b, h, w))

    def grids(self, f: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, residuals), each (B, D, h/p, w/p), from the (B, D, h, w) patch features and the index of each
        patch's nearest bank entry (B, h*w): patch features and their difference to the nearest bank
        entry, averaged over p x p patches (``grid_pool``). The bank side gathers the rows the patches picked in
        cell order (``_cell_order``), so each cell's mean is over contiguous rows."""
        b, d, h, w = f.shape
        p = grid_pool(h, w)
        gh, gw = h // p, w // p
        order = _cell_order(h, w, p)
        feats = F.avg_pool2d(f, p).reshape(b, d, gh * gw)  # (B, D, cells), pooled in the features' own layout
        picked = torch.index_select(idx, 1, order).reshape(-1)
        normal = torch.index_select(self.bank, 0, picked).reshape(b, gh * gw, p * p, d).mean(2)  # (B, cells, D)
        res = feats - normal.transpose(1, 2)
        return feats.reshape(b, d, gh, gw), res.reshape(b, d, gh, gw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.features(x))

    def head(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scoring path from the (B, D, h, w) patch features on."""
        h, w = f.shape[-2], f.shape[-1]
        dist, idx = self.search_patches(f, h, w)
        return (*self.finish(f, dist, idx, h, w), *self.grids(f, idx))


class PatchCore(Detector):
    method = "patchcore"
    # stride 4 taps give a 64x64 patch grid at 256 px: much sharper localisation than the paper's
    # stride 8 + 16, and a small bank costs little accuracy, so the search stays cheap
    default_strides = (4, 8, 16)

    Params = PatchCoreParams

    def __init__(self, **params):
        super().__init__(**params)
        self.memory_bank_: torch.Tensor | None = None
        self.bank_knn_: torch.Tensor | None = None
        self._graph: PatchCoreGraph | None = None
        self._index = None
        # callables given the backbone's tapped maps of every training batch (a PaDiM fitted on the same pass);
        # with ``auto``, only the candidate of the default layers and input size feeds them
        self.feature_taps: tuple = ()
        # with ``auto`` and one layer set: called with the candidate that fed ``feature_taps`` before the bank choice's
        # self-check pass, it returns a model fitted on them to score in that pass (or None); the chosen bank's and
        # its raw scores are then left in ``_choice_scores`` (``autochoice.ChoiceScores``)
        self.choice_companion = None

    def fit(self, images, progress: Progress | None = None, fingerprint: str | None = None):
        if self.auto != "off":
            from linewatch.vision.autochoice import fit_auto

            return fit_auto(self, images, progress, fingerprint)
        return super().fit(images, progress, fingerprint)

    def use_bank(self, bank: torch.Tensor) -> None:
        """Score with ``bank`` from now on (e.g. the first k entries of the greedy bank), neighbours rebuilt."""
        self.memory_bank_ = bank.contiguous()
        self.bank_knn_ = self._bank_neighbours(self.memory_bank_)
        self._build()

    def _features(self) -> PatchFeatures:
        return PatchFeatures(self.extractor_, self.params_["neighbourhood"], self.area_input()).eval()

    def _start(self, n_images: int) -> None:
        # channels_last: the depthwise convolutions run ~1.5x faster on CPU, and the patches come out as rows
        self._pf = self._features().to(memory_format=torch.channels_last)
        h, w = self.preprocess.input_hw
        stride = self.default_strides[0]
        self._inside = None  # with an inspection area: the patch grid's cells inside it (``_accumulate``)
        area = self._area_in = self.area_input()
        share = 1.0 if area is None else max(float(area.mean()), 1.0 / (h * w))
        patches = math.ceil(n_images * math.ceil(h / stride) * math.ceil(w / stride) * share)
        p = self.params_
        target = max(1, min(p["max_bank"], math.ceil(p["coreset_ratio"] * patches)))
        self._coreset = StreamingCoreset(
            target, min(p["pool_limit"], max(patches, 2 * target)), seed=p["seed"], skip_covered=p["skip_covered"]
        )

    def _accumulate(self, x: torch.Tensor, progress: Progress | None) -> None:
        maps = self._pf.maps(x.contiguous(memory_format=torch.channels_last))
        for tap in self.feature_taps:
            tap(maps)
        f = self._pf.combine(maps)
        rows = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
        if self._area_in is not None:  # the bank learns only what the model inspects: a varying code left out of it
            if self._inside is None:
                cells = cell_weights(self._area_in, f.shape[-2], f.shape[-1])
                self._inside = torch.from_numpy(cells.reshape(-1) > 0)
            rows = rows[self._inside.repeat(f.shape[0])]
        self._coreset.add(rows, self._wrap(progress))

    @staticmethod
    def _wrap(progress: Progress | None):
        return (lambda d, t: progress("coreset", d, t)) if progress else None

    def _finish(self, progress: Progress | None) -> None:
        self.memory_bank_ = self._coreset.finish(self._wrap(progress)).contiguous()
        # the conversion above changed the shared extractor's weights in place: put them back, so a fitted model
        # and the same model loaded from disk compute exactly the same scores
        self._pf.to(memory_format=torch.contiguous_format)
        del self._coreset, self._pf
        self._inside = self._area_in = None
        self.bank_knn_ = self._bank_neighbours(self.memory_bank_)
        self._build()

    def _bank_neighbours(self, bank: torch.Tensor) -> torch.Tensor:
        k = min(self.params_["num_neighbors"], bank.shape[0])
        index = faiss.IndexFlatL2(bank.shape[1])
        index.add(bank.numpy())
        _, nn_idx = index.search(bank.numpy(), k)
        nn_idx = torch.from_numpy(nn_idx.astype(np.int64))
        nn_idx[:, 0] = torch.arange(bank.shape[0])  # itself first, even among exact duplicates
        return nn_idx

    def _build(self) -> None:
        self._graph = PatchCoreGraph(
            self._features(),
            self.memory_bank_,
            self.bank_knn_,
            AnomalyMap(self.preprocess.input_hw, self.params_["sigma"], self.area_input()),
            self.params_["search"],
            self.params_["search_step"],
            self.params_["refine"],
        ).eval()
        self._index = None
        if self.params_["search"] == "exact":  # the int8 search runs in the graph itself
            self._index = faiss.IndexFlatL2(self.memory_bank_.shape[1])
            self._index.add(self.memory_bank_.numpy())

    def _score(self, x: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        return self._score_features(self._graph.features(x), grids)

    def _score_features(self, f: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        g = self._graph
        h, w = f.shape[-2], f.shape[-1]
        dist, idx = g.search_patches(f, h, w, self._faiss_nearest if g.search == "exact" else self._nearest_each)
        scores = g.finish(f, dist, idx, h, w)
        return (*scores, *g.grids(f, idx)) if grids else scores

    def _faiss_nearest(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = q.shape
        d2, idx = self._index.search(np.ascontiguousarray(q.reshape(-1, d).numpy()), 1)
        return torch.from_numpy(d2[:, 0].reshape(b, n)), torch.from_numpy(idx[:, 0].astype(np.int64).reshape(b, n))

    def _nearest_each(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The graph's own search (the same candidates as its export), an image at a time: the (patches x bank)
        products of a whole batch would cost hundreds of MB."""
        g = self._graph
        d2, idx = (torch.cat(t) for t in zip(*(g.nearest(q[i : i + 1]) for i in range(q.shape[0])), strict=True))
        return d2, idx

    def graph(self) -> nn.Module:
        self._check_fitted()
        return self._graph

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"memory_bank": self.memory_bank_, "bank_knn": self.bank_knn_}

    def _restore(self, tensors: dict[str, torch.Tensor]) -> None:
        self.memory_bank_ = tensors["memory_bank"].float().contiguous()
        self.bank_knn_ = tensors["bank_knn"].long()
        self._build()
