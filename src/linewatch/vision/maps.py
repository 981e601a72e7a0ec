"""Turning patch scores into anomaly maps: bilinear upsampling to the input size, then the Gaussian
smoothing of the PatchCore paper (sigma 4, reflected borders, kernel size 2*ceil(4 sigma)+1 as in anomalib).

Both steps are linear and act on rows and columns separately, so the whole map is one product per side,
``A_h @ scores @ A_w.T``, with ``A = blur @ upsample`` built once per grid size. The same numbers as upsampling and
convolving (up to float rounding), in a fraction of the time: two small matrix products instead of a resize and two
33-tap convolutions over the full-size map (about 2 ms of a 21 ms ONNX graph on bottle)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn


def upsample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): PyTorch's bilinear interpolation along one axis (``align_corners=False``)."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), i0), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), i1), frac)
    return m


def gaussian_kernel(sigma: float) -> np.ndarray:
    if sigma <= 0:
        return np.ones(1)
    radius = int(math.ceil(4.0 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n): a 1-D Gaussian blur with reflected borders (``F.pad(mode="reflect")``, reflected again where the
    kernel is wider than the axis)."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    m = np.zeros((n, n))
    if n == 1:
        m[0, 0] = 1.0
        return m
    period = 2 * (n - 1)
    for t, weight in enumerate(k):
        j = (np.arange(n) + t - r) % period
        j = np.where(j >= n, period - j, j)
        np.add.at(m, (np.arange(n), j), weight)
    return m


@lru_cache(maxsize=16)
def map_matrices(h: int, w: int, out_h: int, out_w: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_h (out_h, h), A_w.T (w, out_w)), float32: bilinear resizing then the blur (none with ``sigma`` 0) is
    ``A_h @ x @ A_w.T``. Built in numpy, so an export tracing the graph takes them as constants."""
    a_h = blur_matrix(out_h, sigma) @ upsample_matrix(h, out_h)
    a_w = blur_matrix(out_w, sigma) @ upsample_matrix(w, out_w)
    return torch.from_numpy(a_h.astype(np.float32)), torch.from_numpy(a_w.T.astype(np.float32).copy())


class AnomalyMap(nn.Module):
    """(B, h, w) patch scores -> (B, H, W) smoothed map at model input resolution (``input_size``: a side, or
    (height, width)). With an inspection area (``area``: the mask at the input's size, ``linewatch.vision.area``),
    ``masked`` zeroes the patches outside it before a detector takes its image score, and the map is 0 outside it."""

    def __init__(self, input_size: int | tuple[int, int], sigma: float = 4.0, area: np.ndarray | None = None):
        super().__init__()
        hw = (input_size, input_size) if isinstance(input_size, int) else input_size
        self.input_hw = (int(hw[0]), int(hw[1]))
        self.sigma = float(sigma)
        self.area = None
        self._cells: dict[tuple[int, int], torch.Tensor] = {}
        if area is not None:
            if area.shape != self.input_hw:
                raise ValueError(f"inspection area {area.shape} is not the input's {self.input_hw}")
            self.area = torch.from_numpy(np.ascontiguousarray(area, dtype=np.float32))

    def cells(self, h: int, w: int) -> torch.Tensor:
        """(h, w) weights, 1 for the patches of an h x w grid inside the area and 0 outside (``area.cell_weights``)."""
        from linewatch.vision.area import cell_weights

        key = (int(h), int(w))
        if key not in self._cells:
            self._cells[key] = torch.from_numpy(cell_weights(self.area.numpy(), *key))
        return self._cells[key]

    def masked(self, patch_scores: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Patch scores, (B, h*w) or (B, h, w), with the patches outside the area at 0 (unchanged without one)."""
        if self.area is None:
            return patch_scores
        cells = self.cells(h, w)
        return patch_scores * (cells.reshape(-1) if patch_scores.dim() == 2 else cells)

    def forward(self, patch_scores: torch.Tensor) -> torch.Tensor:
        h, w = int(patch_scores.shape[-2]), int(patch_scores.shape[-1])  # fixed in an export
        a_h, a_w_t = map_matrices(h, w, *self.input_hw, self.sigma)
        out = torch.matmul(torch.matmul(a_h, patch_scores), a_w_t)
        return out if self.area is None else out * self.area
