import numpy as np
import pytest

from linewatch.vision.metrics import aupro, auroc, image_metrics, rank_auroc
from linewatch.vision.regions import label
from linewatch.vision.thresholds import MIN_SPREAD, calibrate, f1_optimal_threshold, threshold_at_false_alarm_rate


def test_aupro_matches_a_case_worked_by_hand():
    # one image, a defect region of two pixels (0, 1) and two normal pixels (2, 3)
    masks = np.array([[[1, 1, 0, 0]]], dtype=bool)
    maps = np.array([[[0.9, 0.5, 0.7, 0.1]]])
    # thresholds 0.9 -> (FPR 0, PRO 0.5); 0.7 -> (0.5, 0.5); 0.5 -> (0.5, 1); 0.1 -> (1, 1)
    # up to FPR 0.3 the curve is flat at 0.5: area 0.15, normalised 0.5
    assert aupro(masks, maps) == pytest.approx(0.5)
    # up to FPR 1: 0.5 * 0.5 + 1.0 * 0.5
    assert aupro(masks, maps, max_fpr=1.0) == pytest.approx(0.75)


def test_aupro_averages_regions_not_pixels():
    masks = np.zeros((1, 1, 12), dtype=bool)
    masks[0, 0, 0:8] = True  # a large region
    masks[0, 0, 10] = True  # a one-pixel region
    maps = np.zeros((1, 1, 12))
    maps[0, 0, 0:8] = 1.0  # the large region is found, the small one is not
    maps[0, 0, [8, 9, 11]] = 0.5  # normal pixels all score above the small region
    # PRO is 0.5 at FPR 0 (one of two regions fully covered), whatever the pixel counts
    assert aupro(masks, maps, max_fpr=0.3) == pytest.approx(0.5)


def _aupro_sorting_every_pixel(masks, maps, max_fpr=0.3):
    """The textbook computation: every pixel sorted (what ``aupro`` computed until it sorted only the pixels that
    reach the curve)."""
    masks = np.asarray(masks, dtype=bool)
    maps = np.asarray(maps, dtype=np.float64)
    weight = np.zeros(masks.shape)
    n_regions = 0
    for i in range(masks.shape[0]):
        lab, n = label(masks[i], connectivity=8)
        if n:
            sizes = np.bincount(lab.ravel())
            w = np.zeros(n + 1)
            w[1:] = 1.0 / sizes[1:]
            weight[i] = w[lab]
            n_regions += n
    normal = ~masks
    order = np.argsort(-maps.ravel(), kind="stable")
    s = maps.ravel()[order]
    fpr = np.cumsum(normal.ravel()[order]) / normal.sum()
    pro = np.cumsum(weight.ravel()[order]) / n_regions
    last = np.r_[s[1:] != s[:-1], True]
    fpr, pro = np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]
    k = int(np.searchsorted(fpr, max_fpr, side="right"))
    x, y = fpr[:k], pro[:k]
    if k < len(fpr) and x[-1] < max_fpr:
        y_cut = y[-1] + (pro[k] - y[-1]) * (max_fpr - x[-1]) / (fpr[k] - x[-1])
        x, y = np.r_[x, max_fpr], np.r_[y, y_cut]
    return float(np.trapezoid(y, x) / max_fpr)


@pytest.mark.parametrize("levels", [None, 7])  # continuous scores, and scores on 7 levels (many ties)
@pytest.mark.parametrize("max_fpr", [0.01, 0.05, 0.3, 0.5, 1.0])
def test_aupro_on_the_pixels_that_reach_the_curve_is_the_full_sort_bit_for_bit(levels, max_fpr):
    rng = np.random.default_rng(3)
    masks = np.zeros((6, 40, 50), dtype=bool)
    for i in range(4):  # two images without a defect
        for _ in range(3):
            y, x = rng.integers(0, 34), rng.integers(0, 44)
            masks[i, y : y + rng.integers(1, 7), x : x + rng.integers(1, 7)] = True
    maps = rng.random(masks.shape).astype(np.float32) + 0.6 * masks
    if levels:
        maps = np.round(maps * levels) / levels
    assert aupro(masks, maps, max_fpr) == _aupro_sorting_every_pixel(masks, maps, max_fpr)


def test_rank_auroc_is_scikit_learns_and_nan_with_one_class():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    labels = rng.random(5000) < 0.1
    scores = np.round(rng.random(5000) + 0.3 * labels, 2).astype(np.float32)  # ties
    assert rank_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(rank_auroc(np.zeros(4, bool), np.arange(4.0)))
    assert np.isnan(rank_auroc(np.ones(4, bool), np.arange(4.0)))


def test_perfect_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    assert auroc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert np.isnan(auroc(np.array([1, 1]), np.array([0.1, 0.2])))
    m = image_metrics(labels, np.array([0.1, 0.6, 0.5, 0.9]), threshold=0.55)
    assert m["false_alarm_rate"] == 0.5 and m["miss_rate"] == 0.5


def test_f1_optimal_threshold():
    t, f1 = f1_optimal_threshold(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), np.array([0, 0, 1, 1, 1]))
    assert f1 == pytest.approx(1.0) and t == pytest.approx(0.3)


def test_thresholds_from_good_images():
    rng = np.random.default_rng(0)
    good = rng.normal(10, 1, 2000)
    t = threshold_at_false_alarm_rate(good, 0.01)
    assert 0.005 < (good >= t).mean() <= 0.011
    # few held-out images: the threshold is not just the largest score seen
    few = good[:5]
    assert threshold_at_false_alarm_rate(few, 0.01) > few.max()
    cal = calibrate(good, good + 1, 0.01)
    assert cal.normalize(cal.image_threshold) == pytest.approx(0.5)
    assert 0 < cal.normalize(0.0) < 0.01 and 0.99 < cal.normalize(100.0) <= 1
    assert cal.normalize_map(np.array([cal.pixel_threshold]))[0] == pytest.approx(0.5)


def test_scores_of_identical_images_get_a_threshold_above_their_rounding():
    """Held-out images that do not vary score the same up to rounding (the batch, the engine); the threshold allows
    for it (a spread of at least MIN_SPREAD of the mean) instead of sitting on their mean."""
    same = np.array([16.8619, 16.8620, 16.8620, 16.8621])
    t = threshold_at_false_alarm_rate(same, 0.01)
    assert t >= 16.862 * (1 + 2 * MIN_SPREAD)
    # real good images spread more: the floor does not move their threshold
    good = np.random.default_rng(1).normal(40, 1, 21)
    z = 2.3263478740408408  # the 99th percentile of a standard normal
    want = max(good.mean() + z * good.std(ddof=1), np.quantile(good, 0.99))
    assert threshold_at_false_alarm_rate(good, 0.01) == pytest.approx(want)
    # a method's floor: no threshold below it
    cal = calibrate(np.full(3, 4.5e-5), np.full(3, 3e-4), 0.01, floor=1.0)
    assert cal.image_threshold == 1.0 and cal.pixel_threshold == 1.0
    assert calibrate(good, good, 0.01, floor=1.0).image_threshold == threshold_at_false_alarm_rate(good, 0.01)
