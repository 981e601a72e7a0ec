"""Patch features from tapped backbone layers, aligned to one grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linewatch.vision.backbones import FeatureExtractor


class PatchFeatures(nn.Module):
    """Tapped layers, each optionally averaged over a 3x3 neighbourhood (PatchCore's local aggregation),
    upsampled to the finest tapped grid and concatenated: (B, D, h, w)."""

    def __init__(self, extractor: FeatureExtractor, neighbourhood: int = 3):
        super().__init__()
        self.extractor = extractor
        self.neighbourhood = int(neighbourhood)
        self.pool = nn.AvgPool2d(self.neighbourhood, 1, self.neighbourhood // 2) if self.neighbourhood > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.extractor(x)
        if self.pool is not None:
            maps = [self.pool(m) for m in maps]
        h, w = maps[0].shape[-2:]
        aligned = [maps[0]] + [F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False) for m in maps[1:]]
        return torch.cat(aligned, dim=1)
