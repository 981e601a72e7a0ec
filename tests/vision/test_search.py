"""PatchCore's nearest-bank-entry search: the int8 product and the principal-axes one against the exact float32
one; ``auto`` picks int8 or pca by the training CPU (``tests/vision/test_cpu_search.py``)."""

import json
import shutil

import numpy as np
import pytest
import torch

from linewatch.vision.images import open_image
from linewatch.vision.patchcore import PatchCoreGraph, _QuantizedProduct, quantize_columns, quantize_range
from linewatch.vision.saving import load


def _queries(det, images):
    x = torch.from_numpy(np.stack([det.preprocess(open_image(p)) for p in images]))
    with torch.inference_mode():
        q, _, _ = det._graph.embed(x)
    return q


def _test_images(synthetic, n=2):
    return [p for d in sorted((synthetic / "test").iterdir()) for p in sorted(d.iterdir())[:n]]


def test_int8_search_finds_the_nearest_entry_or_one_nearly_as_close(trained, synthetic):
    det, _ = trained
    q = _queries(det, _test_images(synthetic))
    d = det._graph
    g = PatchCoreGraph(d.features, d.bank, d.bank_knn, d.anomaly_map, "int8")  # int8, whatever auto chose here
    exact = PatchCoreGraph(g.features, g.bank, g.bank_knn, g.anomaly_map, "exact")
    with torch.inference_mode():
        d2_q, idx_q = g.nearest(q)
        d2_e, idx_e = exact.nearest(q)
    dist_q, dist_e = d2_q.sqrt(), d2_e.clamp(min=0).sqrt()
    # the int8 distance is an exact distance to a real bank entry: never below the nearest one
    assert (dist_q >= dist_e - 1e-3 * dist_e.max()).all()
    assert (dist_q - dist_e).abs().max() <= 0.02 * float(dist_e.max())
    assert (idx_q == idx_e).float().mean() >= 0.9
    recomputed = ((q - g.bank[idx_q]) ** 2).sum(-1)
    torch.testing.assert_close(d2_q, recomputed)


def _product_both_ways(tmp_path, a, *operands) -> tuple[np.ndarray, np.ndarray]:
    """``_QuantizedProduct`` of ``a`` with ``operands`` through its ONNX export in ONNX Runtime, and in PyTorch."""
    import onnxruntime as ort

    class Product(torch.nn.Module):
        def forward(self, x):
            return _QuantizedProduct.apply(x, *operands)

    path = tmp_path / "p.onnx"
    torch.onnx.export(
        Product(),
        (a,),
        str(path),
        input_names=["a"],
        opset_version=17,
        custom_opsets={"com.microsoft": 1},
        dynamo=False,
    )
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"a": a.numpy()})[0]
    return got, Product()(a).numpy()


def test_quantized_product_matches_onnx_runtime(tmp_path):
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((300, 40)).astype(np.float32) * 3 + 0.5)
    m = torch.from_numpy(rng.standard_normal((40, 70)).astype(np.float32))
    b_q, b_scale = quantize_columns(m)
    bias = torch.from_numpy(rng.standard_normal(70).astype(np.float32))
    zero = torch.zeros(70, dtype=torch.int8)
    a_scale, a_zero = quantize_range(a[:200])  # the last rows may fall outside the range: they saturate

    got, want = _product_both_ways(tmp_path, a, a_scale, a_zero, b_q, b_scale, zero, bias)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * float(np.abs(want).max()))
    # and the quantized product approximates the float one where nothing saturates
    assert np.abs(want - (a @ m + bias).numpy())[:200].max() <= 0.05 * float(np.abs(want).max())


def test_quantized_product_does_not_saturate_on_cpus_without_vnni(tmp_path):
    """The worst case of ``vpmaddubsw`` (AVX2 without VNNI: two uint8 x int8 products summed in an int16): queries
    at the top of their range against bank columns at their largest magnitude. With 8-bit columns (127) the int16
    saturated on such CPUs and ONNX Runtime picked other entries than PyTorch; 7-bit columns fit on every CPU."""
    pytest.importorskip("onnxruntime")
    a = torch.full((4, 32), 2.0)
    a[1] = -1.0  # the bottom of the range too
    m = torch.ones(32, 6)
    m[:, 1] = -1.0
    b_q, b_scale = quantize_columns(m)
    a_scale, a_zero = quantize_range(torch.tensor([-1.0, 2.0]))
    bias, zero = torch.zeros(6), torch.zeros(6, dtype=torch.int8)

    got, want = _product_both_ways(tmp_path, a, a_scale, a_zero, b_q, b_scale, zero, bias)
    np.testing.assert_allclose(got, (a @ m).numpy(), rtol=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_quantize_range_maps_the_range_and_zero_onto_bytes():
    scale, zero = quantize_range(torch.tensor([-2.0, 0.5, 3.1]))
    assert zero.dtype == torch.uint8
    assert abs(float(-2.0 / scale + zero.float())) <= 0.5 and abs(float(3.1 / scale + zero.float()) - 255) <= 0.5
    scale, zero = quantize_range(torch.tensor([1.0, 4.0]))  # zero stays representable
    assert int(zero) == 0 and abs(float(scale) - 4.0 / 255) < 1e-7


def test_a_score_does_not_depend_on_the_other_images_in_its_batch(trained, synthetic):
    det, _ = trained
    images = _test_images(synthetic, 3)
    together = [p.score for p in det.predict(images)]
    alone = [det.predict([p])[0].score for p in images]
    # float rounding of differently blocked products only (a quantization scale taken from the batch moved scores
    # by ~2e-3 of their value)
    np.testing.assert_allclose(together, alone, rtol=1e-5)


def test_quantize_columns_round_trips_within_half_a_step():
    m = torch.tensor([[1.0, -4.0, 0.0], [-0.5, 2.0, 0.0]])
    q, scale = quantize_columns(m)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 63  # 7 bits: no int16 saturation without VNNI
    assert scale[2] == 1.0  # an all-zero column keeps a usable scale
    assert ((q.float() * scale - m).abs() <= scale / 2 + 1e-7).all()


def test_a_model_saved_before_the_int8_search_keeps_scoring_exactly(trained, synthetic, tmp_path):
    _, path = trained
    old = tmp_path / "old"
    shutil.copytree(path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["hyperparameters"]["search"], manifest["hyperparameters"]["search_step"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    det = load(old)
    assert det.params_["search"] == "exact" and det._graph.search == "exact"
    assert det.params_["search_step"] == 1 and det._graph.step == 1
    images = _test_images(synthetic, 1)
    scores = [p.score for p in det.predict(images)]
    exact = load(path)
    exact.params_["search"] = "exact"
    exact.params_["search_step"] = 1
    exact._build()
    assert scores == [p.score for p in exact.predict(images)]


def _small(synthetic, search: str):
    """A PatchCore at 96 px on 8 synthetic good images with ``search``."""
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.patchcore import PatchCore

    train = load_dataset(synthetic).train[:8]
    return PatchCore(image_size=96, search=search, auto="off", self_check=False).fit(train)


@pytest.fixture(scope="module")
def small_exact(synthetic):
    return _small(synthetic, "exact")


def _assert_near_exact(exact, det, images) -> np.ndarray:
    """``det``'s scores of ``images``: never below the exact search's (it finds no entry nearer than the nearest) and
    within 2 % of their scale."""
    a = np.array([p.score for p in exact.predict(images)])
    b = np.array([p.score for p in det.predict(images)])
    assert np.all(b >= a - 1e-4 * a.max()) and np.abs(a - b).max() <= 0.02 * a.max()
    return b


def test_exact_search_is_an_option(synthetic, small_exact):
    assert small_exact._graph.search == "exact" and not hasattr(small_exact._graph, "bank_q")
    _assert_near_exact(small_exact, _small(synthetic, "int8"), _test_images(synthetic, 1))


def test_the_two_smallest_by_groups_are_topk_of_the_whole_row(tmp_path):
    """``k_smallest`` with k = 2, the int8 search's candidates."""
    from linewatch.vision.patchcore import k_smallest

    rng = np.random.default_rng(3)
    values = torch.from_numpy(rng.standard_normal((500, 256)).astype(np.float32))
    # rows whose two smallest share a group, sit in two groups, or lie in the last group
    values[0, 7], values[0, 9] = -50.0, -49.0
    values[1, 3], values[1, 200] = -50.0, -49.0
    values[2, 255], values[2, 254] = -50.0, -49.0
    want = torch.topk(values, 2, dim=1, largest=False).indices
    assert torch.equal(k_smallest(values, 2, 32), want)
    assert torch.equal(k_smallest(values, 2, 16), want)
    _assert_k_smallest_in_onnx_runtime(values, 2, tmp_path)


def _assert_k_smallest_in_onnx_runtime(values: torch.Tensor, k: int, tmp_path) -> None:
    """``k_smallest(values, k)`` exported and run by ONNX Runtime is the whole rows' TopK too."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from linewatch.vision.patchcore import k_smallest

    class Pick(torch.nn.Module):
        def forward(self, x):
            return k_smallest(x, k)

    path = tmp_path / f"pick{k}.onnx"
    torch.onnx.export(Pick(), (values,), str(path), input_names=["x"], dynamic_axes={"x": {0: "rows"}}, dynamo=False)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": values.numpy()})[0]
    np.testing.assert_array_equal(got, torch.topk(values, k, dim=1, largest=False).indices.numpy())


@pytest.mark.parametrize("entries", [200, 256, 100])  # padded to whole groups, a whole number of groups, too few
def test_int8_search_of_any_bank_size_finds_the_nearest_of_the_two_8bit_nearest(entries):
    from linewatch.vision.maps import AnomalyMap

    rng = np.random.default_rng(entries)
    bank = torch.from_numpy(rng.standard_normal((entries, 24)).astype(np.float32))
    q = bank[rng.integers(0, entries, 300)] + 0.05 * torch.from_numpy(rng.standard_normal((300, 24)).astype(np.float32))
    g = PatchCoreGraph(None, bank, torch.zeros(entries, 1, dtype=torch.long), AnomalyMap(16), "int8")
    assert g.grouped == (entries >= 128)
    assert g.bank_q.shape[1] % 32 == 0 or not g.grouped
    d2, idx = g.nearest(q[None])
    partial = _QuantizedProduct.apply(
        q, g.query_scale, g.query_zero, g.bank_q, g.bank_q_scale, g.bank_q_zero, g.bank_q_bias
    )
    cand = torch.topk(partial, 2, dim=1, largest=False).indices  # the whole row's two nearest, padding included
    assert (cand < entries).all()  # a padding column is never among them
    exact = ((q[:, None, :] - bank[cand]) ** 2).sum(-1)
    torch.testing.assert_close(d2[0], exact.min(1).values)
    assert torch.equal(idx[0], cand.gather(1, exact.argmin(1, keepdim=True)).squeeze(1))


def test_k_smallest_by_groups_is_topk_of_the_whole_row(tmp_path):
    from linewatch.vision.patchcore import k_smallest

    rng = np.random.default_rng(5)
    values = torch.from_numpy(rng.standard_normal((400, 256)).astype(np.float32))
    values[0, 7], values[0, 9], values[0, 11], values[0, 13] = -50.0, -49.0, -48.0, -47.0  # four in one group
    values[1, 3], values[1, 100], values[1, 200], values[1, 255] = -50.0, -49.0, -48.0, -47.0  # four groups
    for k in (1, 4, 6):
        want = torch.topk(values, k, dim=1, largest=False).indices
        assert torch.equal(k_smallest(values, k, 32), want)
    _assert_k_smallest_in_onnx_runtime(values, 4, tmp_path)


@pytest.mark.parametrize("entries", [200, 256, 100, 3])  # padded to whole groups, whole groups, too few, tiny
def test_pca_search_measures_its_candidates_exactly_and_mostly_finds_the_nearest(entries):
    """The principal-axes search picks entries along the bank's first axes, measures them exactly: the distance it
    returns is the exact distance to the entry it returns, never below the true nearest, and on clustered data it is
    the nearest for nearly every row. A padding column is never picked."""
    from linewatch.vision.maps import AnomalyMap
    from linewatch.vision.patchcore import PCA_AXES, PCA_CANDIDATES

    rng = np.random.default_rng(entries)
    d = 96  # more dimensions than the axes kept
    bank = torch.from_numpy(rng.standard_normal((entries, d)).astype(np.float32))
    q = bank[rng.integers(0, entries, 300)] + 0.1 * torch.from_numpy(rng.standard_normal((300, d)).astype(np.float32))
    g = PatchCoreGraph(None, bank, torch.zeros(entries, 1, dtype=torch.long), AnomalyMap(16), "pca")
    assert g.pca_axes.shape == (d, min(PCA_AXES, d)) and g.candidates == min(PCA_CANDIDATES, entries)
    assert g.grouped == (entries >= 128) and (g.pca_t_neg2.shape[1] % 32 == 0 or not g.grouped)
    d2, idx = g.nearest(q[None])
    d2, idx = d2[0], idx[0]
    assert (idx < entries).all()
    np.testing.assert_allclose(d2, ((q - bank[idx]) ** 2).sum(1), rtol=1e-4, atol=1e-4)
    true = torch.cdist(q, bank).min(1).values ** 2
    assert (d2 >= true - 1e-3).all()
    assert (d2 <= true + 1e-3).float().mean() >= 0.99


def test_pca_search_is_an_option_scored_alike_in_pytorch_and_onnx(synthetic, small_exact, tmp_path):
    """A model trained with ``search="pca"`` saves it, scores near the exact search and exports with parity."""
    pytest.importorskip("onnxruntime")
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.saving import save

    det = _small(synthetic, "pca")
    assert det._graph.search == "pca" and not hasattr(det._graph, "bank_q")
    images = _test_images(synthetic, 2)
    scores = _assert_near_exact(small_exact, det, images)
    path = save(det, tmp_path / "pca")
    assert load(path).params_["search"] == "pca"
    export_onnx(path)  # checks ONNX Runtime against PyTorch
    onnx_scores = np.array([p.score for p in OnnxModel(path).predict(images)])
    np.testing.assert_allclose(onnx_scores, scores, rtol=1e-3, atol=1e-4)
