"""Patch features from tapped backbone layers, aligned to one grid."""

from __future__ import annotations

import torch
from torch import nn

from linewatch.vision.backbones import FeatureExtractor
from linewatch.vision.maps import map_matrices


class PatchFeatures(nn.Module):
    """Tapped layers, each optionally averaged over a 3x3 neighbourhood (PatchCore's local aggregation),
    upsampled to the finest tapped grid and concatenated: (B, D, h, w)."""

    def __init__(self, extractor: FeatureExtractor, neighbourhood: int = 3):
        super().__init__()
        self.extractor = extractor
        self.neighbourhood = int(neighbourhood)
        self.pool = nn.AvgPool2d(self.neighbourhood, 1, self.neighbourhood // 2) if self.neighbourhood > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.extractor(x))

    def combine(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """The extractor's tapped maps as one (B, D, h, w) grid (two detectors on one backbone pass share them)."""
        if self.pool is not None:
            maps = [self.pool(m) for m in maps]
        h, w = int(maps[0].shape[-2]), int(maps[0].shape[-1])  # fixed in an export
        aligned = [maps[0]]
        for m in maps[1:]:
            # bilinear resizing as two small products (no blur), faster than ONNX Runtime's Resize
            a_h, a_w_t = map_matrices(int(m.shape[-2]), int(m.shape[-1]), h, w, 0.0)
            aligned.append(torch.matmul(torch.matmul(a_h, m), a_w_t))
        return torch.cat(aligned, dim=1)
