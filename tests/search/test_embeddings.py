"""Search embeddings come out of the scoring pass, on the PyTorch and the ONNX Runtime paths alike."""

import json
import shutil

import numpy as np
import pytest
import torch

from linewatch.errors import LinewatchError
from linewatch.vision.embeddings import DEFAULT_REGION_MODE, REGION_MODES, embed, extent_code, region_dim
from linewatch.vision.export import export_onnx
from linewatch.vision.regions import find_components
from linewatch.vision.runtime import OnnxModel
from linewatch.vision.saving import load


def _defective(synthetic):
    return [p for kind in ("scratch", "spot", "chip") for p in sorted((synthetic / "test" / kind).iterdir())]


def _unit(v):
    return np.allclose(np.linalg.norm(v, axis=-1), 1.0, atol=1e-5)


def test_torch_predictions_carry_embeddings(trained, synthetic):
    det, _ = trained
    feats = sum(det.layer_channels())
    preds = det.predict(_defective(synthetic) + sorted((synthetic / "test" / "good").iterdir())[:2])
    dim = region_dim(feats, sum(det.residual_layers))
    for p in preds:
        e = p.embeddings
        assert e is not None
        assert e.image.shape == (feats,) and _unit(e.image)
        assert e.regions.shape == (len(p.regions), dim)
        assert e.peak.shape == (dim,) and _unit(e.peak)
        if len(p.regions):
            assert _unit(e.regions)
            assert e.defects() is e.regions
        else:
            assert e.defects().shape == (1, dim)
    assert any(len(p.regions) for p in preds)
    assert all(p.embeddings is None for p in det.predict(_defective(synthetic)[:2], embeddings=False))


def test_onnx_embeddings_equal_torch(trained, synthetic, tmp_path):
    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    images = _defective(synthetic)[::2]
    want = load(model).predict(images)
    export_onnx(model)
    onnx = OnnxModel(model)
    assert onnx.has_embeddings
    got = onnx.predict(images)
    for a, b in zip(want, got, strict=True):
        assert len(a.regions) == len(b.regions)
        assert np.abs(a.embeddings.image - b.embeddings.image).max() < 1e-3
        assert np.abs(a.embeddings.defects() - b.embeddings.defects()).max() < 1e-3


def test_padim_has_embeddings_on_both_paths(synthetic, tmp_path):
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.padim import Padim
    from linewatch.vision.saving import save

    ds = load_dataset(synthetic)
    det = Padim(image_size=96, n_features=40).fit(ds.train[:12])
    assert sum(det.residual_layers) == 40
    path = save(det, tmp_path / "padim")
    images = _defective(synthetic)[:3]
    want = det.predict(images)
    export_onnx(path)
    got = OnnxModel(path).predict(images)
    for a, b in zip(want, got, strict=True):
        assert a.embeddings.peak.shape == (region_dim(sum(det.layer_channels()), 40),)
        assert np.abs(a.embeddings.defects() - b.embeddings.defects()).max() < 1e-3


class _TwoOutputs(torch.nn.Module):
    """The scoring graph as models exported before search embeddings had it: (score, anomaly map) only."""

    def __init__(self, graph):
        super().__init__()
        self.graph = graph

    def forward(self, x):
        return self.graph(x)[:2]


def _old_export(det, model_dir):
    """Write model.onnx the way the previous release did (two outputs, no residual_layers in the manifest)."""
    from linewatch.vision.manifest import add_file_entry, read_manifest, write_json_atomic

    s = det.preprocess.input_size
    target = model_dir / "model.onnx"
    torch.onnx.export(
        _TwoOutputs(det.graph()).eval(),
        (torch.zeros(1, 3, s, s),),
        str(target),
        input_names=["image"],
        output_names=["score", "anomaly_map"],
        dynamic_axes={"image": {0: "batch"}, "score": {0: "batch"}, "anomaly_map": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    manifest = read_manifest(model_dir)
    add_file_entry(manifest, "onnx", target, opset=17)
    write_json_atomic(model_dir / "manifest.json", manifest)


def test_models_exported_before_embeddings_still_score(trained, synthetic, tmp_path):
    det, path = trained
    model = tmp_path / "old"
    shutil.copytree(path, model)
    _old_export(det, model)
    assert "residual_layers" not in json.loads((model / "manifest.json").read_text())["files"]["onnx"]
    onnx = OnnxModel(model)
    assert not onnx.has_embeddings
    images = _defective(synthetic)[:2]
    preds = onnx.predict(images)
    want = det.predict(images)
    for a, b in zip(want, preds, strict=True):
        assert b.embeddings is None
        assert abs(a.score - b.score) < 1e-3 * max(1.0, abs(a.score))
    with pytest.raises(LinewatchError, match="re-export"):
        onnx.predict(images, embeddings=True)


def test_same_kind_defects_are_nearer_than_other_kinds(trained, synthetic):
    """On the generator's scratches, spots and chips: a region's best match among the others' regions is of its
    own kind more often than chance, and same-kind pairs are more similar on average."""
    det, _ = trained
    images = _defective(synthetic)
    kinds = np.array([p.parent.name for p in images])
    vecs = [p.embeddings.defects() for p in det.predict(images)]
    n = len(vecs)
    sim = np.array([[float((vecs[i] @ vecs[j].T).max()) for j in range(n)] for i in range(n)])
    same = kinds[:, None] == kinds[None, :]
    off = ~np.eye(n, dtype=bool)
    assert sim[same & off].mean() > sim[~same].mean() + 0.05
    np.fill_diagonal(sim, -np.inf)
    top1 = (kinds[sim.argmax(1)] == kinds).mean()
    chance = (same.sum() - n) / (n * (n - 1))
    assert top1 > chance + 0.25, (top1, chance)


def _grids(rng, c=12, g=8):
    return rng.standard_normal((c, g, g)).astype(np.float32), rng.standard_normal((c, g, g)).astype(np.float32)


def test_region_embedding_pools_the_cells_under_the_region():
    rng = np.random.default_rng(0)
    feats, res = _grids(rng)
    amap = np.zeros((64, 64), np.float32)
    amap[8:16, 8:16] = 2.0  # one region in cell (1, 1) of the 8 x 8 grid
    amap[40:56, 40:56] = 1.5  # a larger one over cells (5..6, 5..6)
    regions, labels, comps = find_components(amap, 1.0, 1)
    assert len(regions) == 2 and regions[0].max_score == 2.0
    e = embed(feats, res, amap, labels, comps, 1.0, layers=(4, 8), mode="residuals")
    assert np.allclose(e.regions[0], res[:, 1, 1] / np.linalg.norm(res[:, 1, 1]), atol=1e-5)
    big = res[:, 5:7, 5:7].reshape(12, -1).mean(1)
    assert np.allclose(e.regions[1], big / np.linalg.norm(big), atol=1e-5)
    assert np.allclose(e.peak, e.regions[0], atol=1e-5)  # the peak is the strongest region
    whole = feats.reshape(12, -1).mean(1)
    assert np.allclose(e.image, whole / np.linalg.norm(whole), atol=1e-5)
    # the default: per-layer normalised residuals plus the extent code; all modes give unit vectors
    for mode in REGION_MODES:
        v = embed(feats, res, amap, labels, comps, 1.0, layers=(4, 8), mode=mode)
        assert _unit(v.regions) and v.regions.shape[1] == region_dim(12, 12, mode)
    d = embed(feats, res, amap, labels, comps, 1.0, layers=(4, 8), mode=DEFAULT_REGION_MODE)
    assert not np.allclose(d.regions[0][:12], e.regions[0][:12], atol=1e-3)


def test_an_image_without_regions_is_searched_by_its_peak():
    rng = np.random.default_rng(1)
    feats, res = _grids(rng)
    amap = np.full((64, 64), 0.1, np.float32)
    amap[24:32, 48:56] = 0.5  # below the threshold: no region, but the peak is there
    regions, labels, comps = find_components(amap, 1.0, 1)
    assert regions == []
    e = embed(feats, res, amap, labels, comps, 1.0, layers=(12,), mode="residuals")
    assert e.regions.shape == (0, 12) and e.defects().shape == (1, 12)
    cell = res[:, 3, 6]
    assert np.allclose(e.peak, cell / np.linalg.norm(cell), atol=1e-5)


def test_extent_code_compares_sizes():
    codes = extent_code(np.array([0.001, 0.0012, 0.05]))
    assert codes[0] @ codes[1] > 0.9 > codes[0] @ codes[2]
