"""PaDiM (Defard et al., 2021): a Gaussian per patch position over randomly selected feature channels;
a patch's anomaly score is its Mahalanobis distance to that position's Gaussian."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from linewatch.vision.detector import Detector, Progress
from linewatch.vision.embeddings import grid_pool
from linewatch.vision.features import PatchFeatures
from linewatch.vision.maps import AnomalyMap
from linewatch.vision.methods import PadimParams


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
        self.register_buffer("inv_cov", inv_cov)  # (P, D, D)
        self.anomaly_map = anomaly_map

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image scores, anomaly maps, feature grids, residual grids); the grids feed the search embeddings:
        all patch features, and the selected channels minus the position's mean, average-pooled to a coarse grid."""
        full = self.features(x)
        f = torch.index_select(full, 1, self.channels)
        b, d, h, w = f.shape
        diff = f.reshape(b, d, h * w).permute(0, 2, 1) - self.mean  # (B, P, D)
        m2 = torch.einsum("bpd,pde,bpe->bp", diff, self.inv_cov, diff)
        dist = torch.sqrt(torch.clamp(m2, min=0.0)).reshape(b, h, w)
        amap = self.anomaly_map(dist)
        res = diff.permute(0, 2, 1).reshape(b, d, h, w)
        p = grid_pool(h, w)
        if p > 1:
            full, res = F.avg_pool2d(full, p), F.avg_pool2d(res, p)
        return amap.reshape(b, -1).amax(dim=1), amap, full, res


class Padim(Detector):
    method = "padim"
    default_strides = (4, 8, 16)

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
        return PatchFeatures(self.extractor_, neighbourhood=1).eval()

    def _start(self, n_images: int) -> None:
        self._pf = self._features()
        self.channels_ = None  # chosen again from this fit's layers and seed
        self._n = 0
        self._sum = None
        self._outer = None

    def _accumulate(self, x: torch.Tensor, progress: Progress | None) -> None:
        f = self._pf(x)
        if self.channels_ is None:
            total = f.shape[1]
            g = torch.Generator().manual_seed(self.params_["seed"])
            k = min(self.params_["n_features"], total)
            self.channels_ = torch.sort(torch.randperm(total, generator=g)[:k]).values
        f = torch.index_select(f, 1, self.channels_).double()
        b, d, h, w = f.shape
        f = f.reshape(b, d, h * w).permute(2, 0, 1)  # (P, B, D)
        if self._sum is None:
            self._sum = torch.zeros(h * w, d, dtype=torch.float64)
            self._outer = torch.zeros(h * w, d, d, dtype=torch.float64)
        self._sum += f.sum(1)
        self._outer += torch.bmm(f.transpose(1, 2), f)
        self._n += b

    def _finish(self, progress: Progress | None) -> None:
        n = self._n
        mean = self._sum / n
        cov = (self._outer - n * mean.unsqueeze(2) * mean.unsqueeze(1)) / max(n - 1, 1)
        cov += 0.01 * torch.eye(cov.shape[-1], dtype=cov.dtype)  # regularisation of the paper
        self.mean_ = mean.float()
        self.inv_cov_ = torch.linalg.inv(cov).float()
        del self._sum, self._outer, self._pf
        self._build()

    def _build(self) -> None:
        self._graph = PadimGraph(
            self._features(),
            self.channels_,
            self.mean_,
            self.inv_cov_,
            AnomalyMap(self.preprocess.input_hw, self.params_["sigma"]),
        ).eval()

    def _score(self, x: torch.Tensor, grids: bool = False) -> tuple[torch.Tensor, ...]:
        out = self._graph(x)
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
        self._build()
