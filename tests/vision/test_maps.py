"""The anomaly map as two matrix products equals upsampling then blurring with reflected borders."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linewatch.vision.maps import AnomalyMap


def _reference(p: torch.Tensor, out_hw: tuple[int, int], sigma: float) -> torch.Tensor:
    """Bilinear upsampling, then a separable Gaussian (2*ceil(4 sigma)+1 taps) with reflect padding, as torch ops."""
    m = F.interpolate(p.unsqueeze(1), size=out_hw, mode="bilinear", align_corners=False)
    if sigma > 0:
        r = int(math.ceil(4 * sigma))
        x = torch.arange(-r, r + 1, dtype=torch.float64)
        k = torch.exp(-(x**2) / (2 * sigma**2))
        k = (k / k.sum()).float()
        m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        m = F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return m.squeeze(1)


@pytest.mark.parametrize(
    ("h", "w", "out_h", "out_w", "sigma"),
    [(64, 64, 256, 256, 4.0), (24, 48, 96, 192, 4.0), (7, 13, 28, 52, 2.0), (16, 16, 64, 64, 0.0), (8, 8, 30, 34, 1.5)],
)
def test_map_matches_upsampling_then_blurring(h, w, out_h, out_w, sigma):
    p = torch.from_numpy(np.random.default_rng(0).random((3, h, w), dtype=np.float32) * 10)
    got = AnomalyMap((out_h, out_w), sigma)(p)
    assert got.shape == (3, out_h, out_w)
    torch.testing.assert_close(got, _reference(p, (out_h, out_w), sigma), rtol=1e-5, atol=1e-5)


def test_a_constant_map_stays_constant_and_a_peak_spreads_symmetrically():
    amap = AnomalyMap(64, 4.0)
    torch.testing.assert_close(amap(torch.full((1, 16, 16), 3.0)), torch.full((1, 64, 64), 3.0))
    p = torch.zeros(1, 16, 16)
    p[0, 8, 8] = 1.0
    m = amap(p)[0]
    assert float(m.sum()) == pytest.approx(16.0, rel=1e-4)  # the blur keeps the upsampled mass (4 x 4 per patch)
    torch.testing.assert_close(m, m.T)
