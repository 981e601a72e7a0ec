"""Patch features from tapped backbone layers, aligned to one grid."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from linewatch.vision.backbones import FeatureExtractor
from linewatch.vision.maps import map_matrices


class PatchFeatures(nn.Module):
    """Tapped layers, each optionally averaged over a 3x3 neighbourhood (PatchCore's local aggregation),
    upsampled to the finest tapped grid and concatenated: (B, D, h, w)."""

    def __init__(self, extractor: FeatureExtractor, neighbourhood: int = 3, area: np.ndarray | None = None):
        super().__init__()
        self.extractor = extractor
        self.neighbourhood = int(neighbourhood)
        self.pool = nn.AvgPool2d(self.neighbourhood, 1, self.neighbourhood // 2) if self.neighbourhood > 1 else None
        # an inspection area (``linewatch.vision.area``, at the input's size): the input outside it is set to 0, the
        # ImageNet mean colour once normalised, before the backbone sees it, so that what varies there (a printed
        # code) reaches no feature inside it either (a deep layer's features see far around their patch)
        self.area = None if area is None else torch.from_numpy(np.ascontiguousarray(area, dtype=np.float32))

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's tapped maps of the (B, 3, H, W) input, its outside an inspection area blanked first."""
        return self.extractor(x if self.area is None else x * self.area)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.maps(x))

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
