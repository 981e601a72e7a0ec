"""Turning patch scores into anomaly maps: bilinear upsampling to the input size, then the Gaussian
smoothing of the PatchCore paper (sigma 4). Plain torch ops, so the ONNX export does the same."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GaussianBlur(nn.Module):
    """Separable Gaussian blur with reflected borders; kernel size 2*ceil(4 sigma)+1 as in anomalib."""

    def __init__(self, sigma: float = 4.0):
        super().__init__()
        self.sigma = float(sigma)
        radius = int(math.ceil(4.0 * sigma)) if sigma > 0 else 0
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-(x**2) / (2 * sigma**2)) if sigma > 0 else torch.ones(1)
        k = k / k.sum()
        self.radius = radius
        self.register_buffer("kx", k.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("ky", k.view(1, 1, -1, 1), persistent=False)

    def forward(self, m: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W)
        if self.radius == 0:
            return m
        r = self.radius
        m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), self.kx)
        return F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), self.ky)


class AnomalyMap(nn.Module):
    """(B, h, w) patch scores -> (B, H, W) smoothed map at model input resolution (``input_size``: a side, or
    (height, width))."""

    def __init__(self, input_size: int | tuple[int, int], sigma: float = 4.0):
        super().__init__()
        hw = (input_size, input_size) if isinstance(input_size, int) else input_size
        self.input_hw = (int(hw[0]), int(hw[1]))
        self.blur = GaussianBlur(sigma)

    def forward(self, patch_scores: torch.Tensor) -> torch.Tensor:
        m = F.interpolate(patch_scores.unsqueeze(1), size=self.input_hw, mode="bilinear", align_corners=False)
        return self.blur(m).squeeze(1)
