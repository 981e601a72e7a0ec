"""Patch features from tapped backbone layers, aligned to one grid."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from linewatch.vision.backbones import FeatureExtractor
from linewatch.vision.maps import upsample_matrix


@lru_cache(maxsize=16)
def _resize_matrices(h: int, w: int, out_h: int, out_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear resizing (``align_corners=False``) of an h x w grid as ``A_h @ x @ A_w.T``; numpy-built, so an
    export takes them as constants. Two small products instead of ONNX Runtime's slower Resize (same numbers up to
    float rounding)."""
    a_h = upsample_matrix(h, out_h).astype(np.float32)
    a_w_t = upsample_matrix(w, out_w).T.astype(np.float32).copy()
    return torch.from_numpy(a_h), torch.from_numpy(a_w_t)


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
        h, w = int(maps[0].shape[-2]), int(maps[0].shape[-1])  # fixed in an export
        aligned = [maps[0]]
        for m in maps[1:]:
            a_h, a_w_t = _resize_matrices(int(m.shape[-2]), int(m.shape[-1]), h, w)
            aligned.append(torch.matmul(torch.matmul(a_h, m), a_w_t))
        return torch.cat(aligned, dim=1)
