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
    dim = region_dim(feats, sum(det.residual_layers), search_vectors=det.params_["search_vectors"])
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
        assert a.embeddings.peak.shape == (region_dim(sum(det.layer_channels()), 40, search_vectors="crop"),)
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


# --- crop vectors (search_vectors="crop", the default) ---------------------------------------------------------


def test_crop_box_grows_around_the_top_region_and_stays_inside():
    from linewatch.vision.embeddings import CROP_LEAST, crop_box

    amap = np.zeros((128, 96), np.float32)
    # the higher-scoring box wins: 10 x 20 at (40, 50), twice its longer side (40) around its centre
    assert crop_box([(0, 0, 4, 4, 1.0), (40, 50, 10, 20, 3.0)], amap) == (25, 40, 65, 80)
    # a small region grows to the least side
    x0, y0, x1, y1 = crop_box([(60, 60, 2, 2, 1.0)], amap)
    assert (x1 - x0, y1 - y0) == (CROP_LEAST, CROP_LEAST)
    # at the border the box is cut at the input's edge
    assert crop_box([(90, 120, 6, 8, 1.0)], amap) == (77, 108, 96, 128)
    # no region: around the map's highest pixel
    amap[10, 70] = 5.0
    x0, y0, x1, y1 = crop_box([], amap)
    assert x0 <= 70 < x1 and y0 <= 10 < y1 and y0 == 0
    # an input too small for a crop: all of it
    assert crop_box([], np.zeros((1, 1), np.float32)) == (0, 0, 1, 1)


def test_with_context_blends_the_three_cosines_by_their_weights():
    from linewatch.vision.embeddings import CONTEXT_WEIGHTS, with_context

    rng = np.random.default_rng(0)

    def unit(*shape):
        v = rng.standard_normal(shape).astype(np.float32)
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    r1, r2, c1, c2, i1, i2 = unit(3, 20), unit(2, 20), unit(12), unit(12), unit(12), unit(12)
    a, b = with_context(r1, c1, i1), with_context(r2, c2, i2)
    assert a.shape == (3, 44) and _unit(a) and _unit(b)
    wr, wc, wi = CONTEXT_WEIGHTS
    want = wr * (r1 @ r2.T) + wc * float(c1 @ c2) + wi * float(i1 @ i2)
    assert np.allclose(a @ b.T, want, atol=1e-5)


def test_crop_vectors_are_the_region_vectors_with_the_crop_and_the_image(trained, synthetic):
    """A crop model's vectors hold, weighted, exactly its residual vectors, the crop of each region (the peak's: the
    top region's) through the backbone, and its image vector."""
    import torch

    from linewatch.vision.batches import iter_batches
    from linewatch.vision.embeddings import CONTEXT_WEIGHTS, crop_box

    _, path = trained
    det = load(path)
    assert det.params_["search_vectors"] == "crop"
    images = _defective(synthetic)[:4]
    with_crop = det.predict(images)
    det.params_["search_vectors"] = "regions"
    plain = det.predict(images)
    det.params_["search_vectors"] = "crop"
    inputs = [x for b in iter_batches(images, det.preprocess, 8) for x in b.inputs]
    thr = det.calibration_.pixel_threshold
    wr, wc, wi = (float(np.sqrt(w)) for w in CONTEXT_WEIGHTS)
    for a, p, x in zip(with_crop, plain, inputs, strict=True):
        e = p.embeddings.defects().shape[1]
        c = len(a.embeddings.image)
        v = a.embeddings.defects()
        assert v.shape[1] == e + 2 * c and _unit(v)
        assert np.allclose(v[:, :e] / wr, p.embeddings.defects(), atol=1e-5)
        assert np.allclose(v[:, e + c :] / wi, a.embeddings.image, atol=1e-5)
        amap = _input_map(det, x)
        found, _, _ = find_components(amap, thr, det.min_region_area)
        boxes = [[(r.x, r.y, r.width, r.height, r.max_score)] for r in found] or [[]]
        assert len(boxes) == len(v)

        def crop_of(box, amap=amap, x=x):
            x0, y0, x1, y1 = crop_box(box, amap)
            with torch.inference_mode():
                return det.crop_graph()(torch.from_numpy(np.ascontiguousarray(x[:, y0:y1, x0:x1]))[None])[0].numpy()

        for row, box in zip(v, boxes, strict=True):
            assert np.allclose(row[e : e + c] / wc, crop_of(box), atol=1e-5)
        assert np.allclose(a.embeddings.peak[e : e + c] / wc, crop_of(boxes[0]), atol=1e-5)


def test_each_region_has_its_own_crop_up_to_the_cap():
    from linewatch.vision.embeddings import CROP_REGIONS
    from linewatch.vision.regions import Region
    from linewatch.vision.scoring import region_crops

    amap = np.zeros((256, 256), np.float32)
    amap[5, 7] = 9.0
    seen = []

    def crop(box):
        seen.append(box)
        return np.full(3, float(len(seen)), np.float32)  # the n-th crop made is all n

    # no region: one crop, around the map's peak
    assert region_crops([], amap, crop).tolist() == [[1.0] * 3]
    x0, y0, x1, y1 = seen[0]
    assert x0 <= 7 < x1 and y0 <= 5 < y1
    seen.clear()
    found = [Region(40 * i, 40 * i, width=4, height=4, area=16, max_score=9.0 - i, mean_score=1.0) for i in range(6)]
    rows = region_crops(found, amap, crop)
    assert len(seen) == CROP_REGIONS == 4  # one backbone pass per region up to the cap
    assert rows[:, 0].tolist() == [1, 1, 2, 3, 4, 1, 1]  # the peak, four own crops, then the top region's
    assert [b[0] <= 40 * i < b[2] for i, b in enumerate(seen)] == [True] * 4  # each around its own region


def _input_map(det, x):
    import torch

    with torch.inference_mode():
        return det._score(torch.from_numpy(x)[None])[1][0].numpy()


def test_a_model_saved_before_crop_vectors_keeps_its_vectors(trained, synthetic, tmp_path):
    """No search_vectors in the manifest: the residual vectors, on both paths, as before."""
    _, path = trained
    model = tmp_path / "old"
    shutil.copytree(path, model)
    manifest = json.loads((model / "manifest.json").read_text())
    del manifest["hyperparameters"]["search_vectors"]
    (model / "manifest.json").write_text(json.dumps(manifest))
    det = load(model)
    assert det.params_["search_vectors"] == "regions"
    images = _defective(synthetic)[:2]
    want = det.predict(images)
    dim = region_dim(sum(det.layer_channels()), sum(det.residual_layers))
    assert all(p.embeddings.defects().shape[1] == dim for p in want)
    export_onnx(model)
    assert "onnx_crops" not in json.loads((model / "manifest.json").read_text())["files"]
    got = OnnxModel(model).predict(images)
    for a, b in zip(want, got, strict=True):
        assert np.abs(a.embeddings.defects() - b.embeddings.defects()).max() < 1e-3


def test_an_export_without_the_crop_graph_says_to_re_export(trained, tmp_path):
    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["files"]["onnx_crops"]["name"] == "crops.onnx"
    del manifest["files"]["onnx_crops"]
    (model / "manifest.json").write_text(json.dumps(manifest))
    onnx = OnnxModel(model)
    assert not onnx.has_embeddings
    with pytest.raises(LinewatchError, match="re-export"):
        onnx.require_embeddings()


def test_a_failed_crop_export_leaves_the_previous_export_whole(trained, tmp_path, monkeypatch):
    """The scoring graph is only put in place once the crop graph is written and checked too."""
    import linewatch.vision.export as export

    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    before = {p.name: p.read_bytes() for p in model.iterdir()}

    def broken(graph, tmp):
        raise LinewatchError("exported crop graph differs from PyTorch by 1.00e+00; not written")

    loaded = export.load

    def changed(model_dir):  # a model whose new graphs differ from the ones exported, so a replacement would show
        det = loaded(model_dir)
        with torch.no_grad():
            next(det.extractor_.parameters()).mul_(1.01)
        return det

    monkeypatch.setattr(export, "load", changed)
    monkeypatch.setattr(export, "_check_crops", broken)
    with pytest.raises(LinewatchError, match="crop graph differs"):
        export_onnx(model)
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before  # no temp file left, nothing replaced
    assert OnnxModel(model).has_embeddings


def test_a_batch_of_crops_gives_each_crop_its_own_vector(trained):
    """The PyTorch path embeds a batch's crops in one pass: the same vectors as one crop at a time."""
    _, path = trained
    graph = load(path).crop_graph()
    gen = torch.Generator().manual_seed(0)
    crops = [torch.randn(1, 3, h, w, generator=gen) for h, w in ((32, 32), (70, 41), (128, 96))]
    with torch.inference_mode():
        together = graph.many(crops)
        alone = torch.cat([graph(c) for c in crops])
    assert together.shape == (3, alone.shape[1])
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(together[0], together[1], atol=1e-3)  # not one vector for all
