"""PaDiM with a covariance shared by each block of patch positions (``cov_block``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from linewatch.vision.datasets import load_dataset
from linewatch.vision.metrics import auroc
from linewatch.vision.padim import Padim, block_of, fitting_block
from linewatch.vision.saving import load, save


@pytest.fixture(scope="module")
def pair(synthetic):
    """The same images fitted with one covariance per position and one per 2 x 2 block."""
    ds = load_dataset(synthetic)
    kw = {"image_size": 64, "n_features": 24, "self_check": False}
    return ds, Padim(cov_block=1, **kw).fit(ds.train), Padim(cov_block=2, **kw).fit(ds.train)


def test_block_covariance_pools_its_positions(pair):
    """Each block's covariance is its positions' covariances averaged (the same regularisation on all), around
    each position's own mean, so the means are unchanged."""
    _, one, two = pair
    h, w = one.preprocess.input_hw[0] // 4, one.preprocess.input_hw[1] // 4  # the stride-4 grid
    assert one.inv_cov_.shape[0] == h * w and two.inv_cov_.shape[0] == (h // 2) * (w // 2)
    assert torch.equal(one.mean_, two.mean_)
    per_pos = torch.linalg.inv(one.inv_cov_.double())
    d = per_pos.shape[-1]
    pooled = per_pos.reshape(h // 2, 2, w // 2, 2, d, d).mean((1, 3)).reshape(-1, d, d)
    got = torch.linalg.inv(two.inv_cov_.double())
    # each block's matrix as a whole (the float32 inverses stored round its small entries)
    rel = torch.linalg.matrix_norm(got - pooled) / torch.linalg.matrix_norm(pooled)
    assert float(rel.max()) < 1e-3


def test_block_distances_are_the_mahalanobis_distances(pair):
    """The graph's per-block products give each position's Mahalanobis distance under its block's covariance."""
    _, _, two = pair
    g = two.graph()
    x = torch.randn(2, 3, *two.preprocess.input_hw)
    with torch.inference_mode():
        f = torch.index_select(g.features(x), 1, g.channels)
        b, d, h, w = f.shape
        diff = f.reshape(b, d, h * w).permute(0, 2, 1) - g.mean
        got = g.mahalanobis(diff, h, w).reshape(b, h * w)
    block = torch.arange(h * w).reshape(h, w)
    block = ((block // w) // 2) * (w // 2) + (block % w) // 2  # each position's block
    inv = two.inv_cov_[block.reshape(-1)]
    want = torch.sqrt(torch.einsum("bpd,pde,bpe->bp", diff.double(), inv.double(), diff.double()))
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_a_block_model_saves_loads_and_finds_defects(synthetic, tmp_path):
    ds = load_dataset(synthetic)
    two = Padim(image_size=128, cov_block=2, self_check=False).fit(ds.train)
    path = save(two, tmp_path / "m")
    assert json.loads((path / "manifest.json").read_text())["hyperparameters"]["cov_block"] == 2
    again = load(path)
    assert again.graph().block == 2
    imgs = [s.path for s in ds.test]
    scores = [p.score for p in two.predict(imgs)]
    assert [p.score for p in again.predict(imgs)] == pytest.approx(scores, rel=1e-5)
    labels = [t.is_anomalous for t in ds.test]
    assert auroc(np.array(labels), np.array(scores)) >= 0.9


def test_a_model_saved_before_blocks_loads_as_one_covariance_per_position(pair, tmp_path):
    _, one, _ = pair
    path = save(one, tmp_path / "old")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["hyperparameters"]["cov_block"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load(path).graph().block == 1


def test_block_sizes_that_do_not_tile():
    assert fitting_block(16, 24, 4) == 4
    assert fitting_block(16, 10, 4) == 2
    assert fitting_block(15, 9, 4) == 3
    assert fitting_block(7, 11, 4) == 1
    assert block_of(64, 16) == 2
    with pytest.raises(ValueError, match="do not tile"):
        block_of(64, 12)


def test_the_gaussians_are_the_training_features_mean_and_covariance(synthetic):
    """Checked against the features of the training images in float64 (the fit sums float32 products of the
    features minus a reference)."""
    from linewatch.vision.batches import iter_batches

    train = load_dataset(synthetic).train
    det = Padim(image_size=64, n_features=24, cov_block=1, self_check=False).fit(train)
    used, _ = det.split(train)
    g = det.graph()
    with torch.inference_mode():
        feats = [
            torch.index_select(g.features(torch.from_numpy(b.inputs)), 1, g.channels)
            for b in iter_batches(used, det.preprocess, 8)
        ]
    x = torch.cat(feats).double()  # (N, D, h, w)
    n, d = x.shape[:2]
    x = x.reshape(n, d, -1).permute(2, 0, 1)  # (P, N, D)
    mean = x.mean(1)
    centred = x - mean.unsqueeze(1)
    cov = centred.transpose(1, 2) @ centred / (n - 1) + 0.01 * torch.eye(d, dtype=torch.float64)
    torch.testing.assert_close(det.mean_.double(), mean, rtol=1e-4, atol=1e-5)
    got = torch.linalg.inv(det.inv_cov_.double())
    rel = torch.linalg.matrix_norm(got - cov) / torch.linalg.matrix_norm(cov)
    assert float(rel.max()) < 1e-3
