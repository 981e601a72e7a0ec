"""PaDiM (Defard et al., 2021): a Gaussian per patch position over randomly selected feature channels;
a patch's anomaly score is its Mahalanobis distance to that position's Gaussian.

Each position keeps its own mean; the covariance may be shared by the positions of a ``cov_block`` x ``cov_block``
block (pooled around each position's own mean). One 100 x 100 covariance per position is 164 MB to read for every
image at a 64 x 64 grid; shared by 4 x 4 blocks it is 10 MB, estimated from 16 times as many samples, and the
distances become one matrix product per block instead of a vector-matrix product per position."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from linewatch.vision.batches import Source
from linewatch.vision.detector import Detector, Progress
from linewatch.vision.embeddings import grid_pool
from linewatch.vision.features import PatchFeatures
from linewatch.vision.maps import AnomalyMap
from linewatch.vision.methods import PadimParams

FACTOR_STRIPS = 2
FINISH_BLOCKS = 64  # blocks inverted or factored at once (float64 copies of all blocks are large)


class PadimGraph(nn.Module):
    def __init__(
        self,
        features: PatchFeatures,
        channels: torch.Tensor,
        mean: torch.Tensor,
        inv_cov: torch.Tensor,
        anomaly_map: AnomalyMap,
    ):
        super().__init__()
        self.features = features
        self.register_buffer("channels", channels.long())
        self.register_buffer("mean", mean)  # (P, D)
        # inv_cov: (K, D, D), one per block of positions; its Cholesky factor L (inv = L L^T) turns each
        # Mahalanobis distance into the squared norm of diff @ L
        factor = torch.empty_like(inv_cov, dtype=torch.float32)  # lower triangular
        for lo in range(0, inv_cov.shape[0], FINISH_BLOCKS):  # a few blocks at a time: float64 copies of all are large
            factor[lo : lo + FINISH_BLOCKS] = torch.linalg.cholesky(inv_cov[lo : lo + FINISH_BLOCKS].double())
        # L is zero above its diagonal: cut into column strips, each strip only needs the rows from its first
        # column down (a quarter less to read per image with two strips: 15.3 -> 14.3 ms for the combined graph)
        d = factor.shape[-1]
        self.starts = [round(d * k / FACTOR_STRIPS) for k in range(FACTOR_STRIPS)]
        ends = [*self.starts[1:], d]
        for k, (a, b) in enumerate(zip(self.starts, ends, strict=True)):
            self.register_buffer(f"factor_{k}", factor[:, a:, a:b].contiguous())
        self.block = block_of(mean.shape[0], inv_cov.shape[0])
        self.anomaly_map = anomaly_map

    def mahalanobis(self, diff: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, h*w, D) differences to the positions' means -> (B, h, w) Mahalanobis distances."""
        b, _, d = diff.shape
        s, h, w = self.block, int(h), int(w)  # the input size is fixed in an export: constants there
        gh, gw = h // s, w // s
        # (B, gh, s, gw, s, D) -> (blocks, B * s * s, D): each block's rows against its own factor
        rows = diff.reshape(b, gh, s, gw, s, d).permute(1, 3, 0, 2, 4, 5).reshape(gh * gw, b * s * s, d)
        m2 = None  # (blocks, B * s * s)
        for k, a in enumerate(self.starts):
            part = torch.bmm(rows[:, :, a:], getattr(self, f"factor_{k}")).square().sum(-1)
            m2 = part if m2 is None else m2 + part
        m2 = m2.reshape(gh, gw, b, s, s).permute(2, 0, 3, 1, 4).reshape(b, h, w)
        return torch.sqrt(m2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image scores, anomaly maps, feature grids, residual grids); the grids feed the search embeddings:
        all patch features, and the selected channels minus the position's mean, average-pooled to a coarse grid."""
        return self.head(self.features(x))

    def head(self, full: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The scoring path from the (B, D, h, w) patch features on."""
        f = torch.index_select(full, 1, self.channels)
        b, d, h, w = f.shape
        diff = f.reshape(b, d, h * w).permute(0, 2, 1) - self.mean  # (B, P, D)
        dist = self.anomaly_map.masked(self.mahalanobis(diff, h, w), h, w)
        amap = self.anomaly_map(dist)
        res = diff.permute(0, 2, 1).reshape(b, d, h, w)
        p = grid_pool(h, w)
        if p > 1:
            full, res = F.avg_pool2d(full, p), F.avg_pool2d(res, p)
        return amap.reshape(b, -1).amax(dim=1), amap, full, res


def block_of(positions: int, blocks: int) -> int:
    """The side of the square blocks that share a covariance, from the counts of positions and of covariances."""
    s = int(round(math.sqrt(positions / blocks)))
    if s < 1 or s * s * blocks != positions:
        raise ValueError(f"{blocks} covariances do not tile {positions} patch positions in square blocks")
    return s


def fitting_block(h: int, w: int, block: int) -> int:
    """The largest block side <= ``block`` that tiles an h x w grid."""
    return max(t for t in range(1, block + 1) if h % t == 0 and w % t == 0)


class Padim(Detector):
    method = "padim"
    default_strides = (4, 8, 16)
    # scores are Mahalanobis distances, in standard deviations of the good patches: no threshold lies below one (where
    # the training images barely vary, the held-out scores are float rounding, and a weight or threshold set from
    # them would make rounding a defect); real parts' thresholds are tens (bottle 37, magnetic_tile 21)
    score_floor = 1.0

    Params = PadimParams

    def __init__(self, **params):
        super().__init__(**params)
        self.channels_: torch.Tensor | None = None
        self.mean_: torch.Tensor | None = None
        self.inv_cov_: torch.Tensor | None = None
        self._graph: PadimGraph | None = None

    @property
    def residual_layers(self) -> tuple[int, ...]:
        """The residuals are the selected channels: how many of them fall in each backbone layer."""
        bounds = np.cumsum((0, *self.layer_channels()))
        return tuple(int(n) for n in np.histogram(self.channels_.numpy(), bins=bounds)[0])

    def _features(self) -> PatchFeatures:
        return PatchFeatures(self.extractor_, neighbourhood=1, area=self.area_input()).eval()

    def _start(self, n_images: int) -> None:
        self._pf = self._features()
        self._reset_sums()

    def _reset_sums(self) -> None:
        self.channels_ = None  # chosen again from this fit's layers and seed
        self._n, self._sum, self._outer, self._hw = 0, None, None, None

    def _accumulate(self, x: torch.Tensor, progress: Progress | None) -> None:
        self._take(self._pf(x))

    def tap(self) -> Callable[[list[torch.Tensor]], None]:
        """Accumulate from another detector's backbone pass instead of a fit of its own: the returned callable takes
        the extractor's tapped maps of each training batch (PatchCore's ``feature_taps``); ``finish_tap`` then ends
        the fit. Saves PaDiM's own pass over the training images when both are fitted on the same ones."""
        self.params_ = self._validate_params()
        self._reset_sums()
        combiner = PatchFeatures(None, neighbourhood=1)
        return lambda maps: self._take(combiner.combine(maps))

    def finish_tap(self, source: Detector, held: Sequence[Source], progress: Progress | None = None) -> bool:
        """End a tapped fit with ``source``'s backbone, layers and input (thresholds set on ``held`` unless
        ``_calibrate_on_fit`` is off); False, and
        nothing changed, when the tapped maps were not those of ``source``'s chosen settings (then fit instead)."""
        if self._n == 0:
            return False
        h, w = source.preprocess.input_hw
        stride = source.default_strides[0]
        grid = (math.ceil(h / stride), math.ceil(w / stride))
        if self._hw != grid or self._total != sum(source.layer_channels()):
            return False
        started = time.perf_counter()
        self.params_["layers"] = source.params_["layers"]
        self.params_["image_size"] = source.params_["image_size"]
        self.extractor_, self.input_shape_ = source.extractor_, source.input_shape_
        self._pf = None
        with torch.inference_mode():
            self._finish(progress)
        if self._calibrate_on_fit:
            self._calibrate(held, progress)
        self.skipped_ = list(source.skipped_)
        self.train_info_ = {"seconds": round(time.perf_counter() - started, 2), "tapped": True}
        return True

    def _take(self, f: torch.Tensor) -> None:
        if self.channels_ is None:
            total = self._total = f.shape[1]
            g = torch.Generator().manual_seed(self.params_["seed"])
            k = min(self.params_["n_features"], total)
            self.channels_ = torch.sort(torch.randperm(total, generator=g)[:k]).values
        f = torch.index_select(f, 1, self.channels_).float()
        b, d, h, w = f.shape
        if self._sum is None:
            self._hw, self._block = (h, w), fitting_block(h, w, self.params_["cov_block"])
            # sums are of features minus the first batch's mean (a shift keeps the float32 products exact enough)
            self._ref = f.mean(0)
            self._sum = torch.zeros(d, h, w, dtype=torch.float64)
            blocks = (h // self._block) * (w // self._block)
            # float32 sums of products of features minus the reference: centred, so they hold their precision
            # (within 1e-3 of a float64 computation, tested) at half the memory of float64 sums
            self._outer = torch.zeros(blocks, d, d)
        s = self._block
        f = f - self._ref
        self._sum += f.sum(0)
        # (B, D, h, w) -> (blocks, B * s * s, D): each block's products added in place. Rows of whole feature vectors
        # (runs of D floats), not of two: the step took 42-47 ms for a batch of 8 at 256 px on a 2-core EPYC, now
        # 22-25, and the sums came out the same bit for bit (the same rows in the same order)
        rows = f.permute(0, 2, 3, 1).reshape(b, h // s, s, w // s, s, d).permute(1, 3, 0, 2, 4, 5)
        rows = rows.reshape(-1, b * s * s, d)
        self._outer.baddbmm_(rows.transpose(1, 2), rows)
        self._n += b

    def _finish(self, progress: Progress | None) -> None:
        n, s = self._n, self._block
        (h, w), d = self._hw, self._sum.shape[0]
        shifted = self._sum / n  # (D, h, w): each position's mean minus the reference
        m = shifted.reshape(d, h // s, s, w // s, s).permute(1, 3, 0, 2, 4).reshape(-1, d, s * s)
        self.mean_ = (self._ref.double() + shifted).reshape(d, h * w).t().float().contiguous()
        # a few blocks at a time, in float64: the covariances of all blocks at once were four float64 copies of the
        # sums (330 MB at 256 px)
        self.inv_cov_ = torch.empty_like(self._outer)
        eye = 0.01 * torch.eye(d, dtype=torch.float64)  # regularisation of the paper
        for lo in range(0, m.shape[0], FINISH_BLOCKS):
            mb = m[lo : lo + FINISH_BLOCKS]
            # around each position's own mean: sum over the block of (x - m_p)(x - m_p)^T
            scatter = self._outer[lo : lo + FINISH_BLOCKS].double() - n * torch.bmm(mb, mb.transpose(1, 2))
            cov = scatter / max(s * s * (n - 1), 1) + eye
            self.inv_cov_[lo : lo + FINISH_BLOCKS] = torch.linalg.inv(cov)
        del self._sum, self._outer, self._ref, self._pf
        self._build()

    def _build(self) -> None:
        self._graph = PadimGraph(
            self._features(),
            self.channels_,
            self.mean_,
            self.inv_cov_,
            AnomalyMap(self.preprocess.input_hw, self.params_["sigma"], self.area_input()),
        ).eval()

    def _score(self, x: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        return self._score_features(self._graph.features(x), grids)

    def _score_features(self, f: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        out = self._graph.head(f)
        return out if grids else out[:2]

    def graph(self) -> nn.Module:
        self._check_fitted()
        return self._graph

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"channels": self.channels_, "mean": self.mean_, "inv_cov": self.inv_cov_}

    def _restore(self, tensors: dict[str, torch.Tensor]) -> None:
        self.channels_ = tensors["channels"].long()
        self.mean_ = tensors["mean"].float()
        self.inv_cov_ = tensors["inv_cov"].float()
        block_of(self.mean_.shape[0], self.inv_cov_.shape[0])  # a clear error for tensors that do not fit
        self._build()
