import numpy as np
import pytest
import scipy.ndimage as ndi

from linewatch.vision.regions import _fast_labels, _label_numpy, find_regions, label


@pytest.mark.parametrize("labeller", [label, _label_numpy], ids=["default", "numpy"])
def test_labels_match_scipy_on_random_masks(labeller):
    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random((rng.integers(1, 50), rng.integers(1, 50))) < rng.random()
        for conn, structure in ((8, np.ones((3, 3))), (4, None)):
            ours, n = labeller(mask, conn)
            ref, n_ref = ndi.label(mask, structure=structure)
            assert n == n_ref
            # same partition: label pairs map one to one
            pairs = {(a, b) for a, b in zip(ours.ravel(), ref.ravel(), strict=True)}
            assert len(pairs) == n + (1 if (~mask).any() else 0)


def test_fast_and_numpy_labels_are_the_same_numbers():
    """kornia-rs's labels (when installed) and the numpy fallback number components alike (raster order of the
    first pixel), so regions and their embeddings do not depend on which one ran."""
    if _fast_labels() is None:
        pytest.skip("kornia-rs is not installed: only the numpy labelling runs")
    rng = np.random.default_rng(1)
    for _ in range(100):
        mask = rng.random((rng.integers(1, 80), rng.integers(1, 80))) < rng.random()
        for conn in (8, 4):
            fast, n_fast = label(mask, conn)
            slow, n_slow = _label_numpy(mask, conn)
            assert n_fast == n_slow
            np.testing.assert_array_equal(fast, slow)
            assert fast.shape == mask.shape


def test_regions_have_boxes_areas_and_scores():
    amap = np.zeros((20, 30), dtype=np.float32)
    amap[2:5, 3:9] = 1.0
    amap[3, 4] = 3.0
    amap[15, 25] = 2.0  # a one-pixel speck
    regions = find_regions(amap, 0.5)
    assert len(regions) == 2
    big = max(regions, key=lambda r: r.area)
    assert (big.x, big.y, big.width, big.height, big.area) == (3, 2, 6, 3, 18)
    assert big.max_score == 3.0
    assert abs(big.mean_score - (17 + 3) / 18) < 1e-9
    assert [r.area for r in find_regions(amap, 0.5, min_area=2)] == [18]
    assert find_regions(amap, 10.0) == []


def test_full_size_map_is_made_on_first_use_only():
    from linewatch.vision.images import Preprocess
    from linewatch.vision.scoring import postprocess
    from linewatch.vision.thresholds import Calibration

    pre = Preprocess(32)
    amap = np.zeros((32, 32), np.float32)
    amap[8:16, 8:16] = 5.0
    cal = Calibration(1.0, 0.5, 1.0, 0.5, 0.01, 10)
    pred = postprocess(3.0, amap, cal, pre, 90, 60)
    assert pred.verdict == "anomalous" and len(pred.regions) == 1
    assert "anomaly_map" not in vars(pred)
    full = pred.anomaly_map
    assert full.shape == (60, 90) and full.dtype == np.float32
    np.testing.assert_array_equal(full, pre.map_to_original(amap, 90, 60))
    assert pred.anomaly_map is full  # made once


def test_a_smallest_region_larger_than_the_input_is_refused():
    """No region of more pixels than the model's input can exist: such a setting is a mistake, said before any work."""
    from linewatch.errors import LinewatchError
    from linewatch.vision.patchcore import PatchCore

    with pytest.raises(LinewatchError, match=r"min_region_area 4097 is more than the model input's 4096 pixels"):
        PatchCore(image_size=64, min_region_area=64 * 64 + 1)._validate_params()
    with pytest.raises(LinewatchError, match=r"input's 1024 pixels \(32 x 32\)"):
        PatchCore(image_size=64, center_crop=32, min_region_area=1025)._validate_params()
    assert PatchCore(image_size=64, min_region_area=64 * 64)._validate_params()["min_region_area"] == 4096
