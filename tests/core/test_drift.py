"""The drift watch's statistics (``linewatch.core.drift``)."""

import numpy as np
import pytest

from linewatch.core.drift import MIN_RECENT, rate_bound, score_drift


def test_unmoved_scores_are_ok_and_a_shift_either_way_is_named():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 100)
    same = score_drift(ref, rng.normal(0, 1, 200))
    assert same.level == "ok" == same.scores_level and abs(same.shift_auroc - 0.5) < 0.1
    assert 35 < same.median_percentile < 65 and "look as when" in same.reason
    # a few defects among the recent parts move the rank test by about half their share, not to a level
    mixed = score_drift(ref, np.concatenate([rng.normal(0, 1, 190), rng.normal(6, 1, 10)]))
    assert mixed.level == "ok" and mixed.shift_auroc < 0.6
    up_scores = rng.normal(1.5, 1, 200)
    up = score_drift(ref, up_scores, threshold=2.3, promised_rate=0.01)
    assert up.level == "drift" and up.shift_auroc > 0.8 and up.p_value < 1e-4
    assert "higher" in up.reason and "set the thresholds again" in up.reason
    assert up.flagged_share == pytest.approx(np.mean(up_scores >= 2.3)) and up.promised_rate == 0.01
    down = score_drift(ref, rng.normal(-1.5, 1, 200))
    assert down.level == "drift" and down.shift_auroc < 0.2 and "lower" in down.reason and "camera" in down.reason
    small = score_drift(ref, rng.normal(0.8, 1, 200))  # a moderate shift: watch, not yet drift
    assert small.level == "watch", small


def test_too_few_scores_say_nothing():
    ref = np.linspace(0, 1, 50)
    few = score_drift(ref, np.linspace(5, 6, MIN_RECENT - 1))
    assert few.level == "unknown" and few.shift_auroc is None and "too few" in few.reason
    assert score_drift(np.linspace(0, 1, 5), np.linspace(0, 1, 100)).level == "unknown"
    # nan and inf scores are not counted
    assert score_drift(ref, [float("nan")] * 100).recent == 0


def test_overturned_flags_are_tested_against_the_rate_the_threshold_has_on_the_reference():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 100)
    threshold = float(np.quantile(ref, 0.99))  # about 1 of the 100 reference scores at or above it
    recent = rng.normal(0, 1, 80)
    ok = score_drift(ref, recent, threshold, 0.01, confirmed_false_alarms=2)
    assert ok.false_alarms_level == "ok" and ok.level == "ok" and "within chance" in ok.reason
    many = score_drift(ref, recent, threshold, 0.01, confirmed_false_alarms=16)
    assert many.false_alarms_level == "drift" == many.level and many.scores_level == "ok"
    assert many.false_alarm_share == pytest.approx(16 / 80) and many.false_alarm_p < 1e-4
    assert "reviewers overturned 16 flags among 80 parts" in many.reason and "set the thresholds again" in many.reason
    # the reference's own uncertainty: 2.5 % against a threshold with 1 of 100 above it is not drift, while the
    # same count against an exactly known 1 % would be more surprising
    two = score_drift(ref, recent, threshold, 0.01, confirmed_false_alarms=4)
    exact = score_drift(ref, recent, None, 0.01, confirmed_false_alarms=4)
    assert two.false_alarm_p > exact.false_alarm_p and two.false_alarms_level != "drift"
    # not counted without reviews, or without a promised rate
    assert score_drift(ref, recent, threshold, 0.01).false_alarms is None
    assert score_drift(ref, recent, threshold, None, 5).false_alarms_level == "unknown"


def test_a_tiny_p_value_survives_the_dict():
    rng = np.random.default_rng(2)
    d = score_drift(rng.normal(0, 1, 100), rng.normal(3, 1, 100), 2.3, 0.01, 40).to_dict()
    assert 0 < d["p_value"] < 1e-10 and d["false_alarm_p"] < 1e-10  # the latter may underflow to 0


def test_how_high_a_thresholds_rate_can_be_from_the_scores_it_was_set_on():
    assert rate_bound(0, 21) == pytest.approx(0.085, abs=0.005)  # bottle's 21 held-out images, none above
    assert rate_bound(0, 500) < rate_bound(0, 100) < rate_bound(0, 21)  # more images, a tighter bound
    assert rate_bound(5, 100) > rate_bound(1, 100) > 0.01
    assert rate_bound(1, 100, confidence=0.5) < rate_bound(1, 100)


def test_many_flags_without_reviews_are_named_without_a_level():
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, 100)
    recent = np.concatenate([rng.normal(0, 1, 180), rng.normal(6, 1, 20)])  # a tenth defective
    d = score_drift(ref, recent, threshold=2.3, promised_rate=0.01)
    assert d.level == "ok" and d.flagged_share >= 0.1
    assert "of the recent parts are flagged against the 1.0% false alarms promised" in d.reason
    assert "reviewing the flags tells which" in d.reason
    # reviewed: the overturned flags speak instead
    assert "reviewing the flags" not in score_drift(ref, recent, 2.3, 0.01, confirmed_false_alarms=1).reason
    assert "are flagged" not in score_drift(ref, rng.normal(0, 1, 200), 2.3, 0.01).reason  # about 1 % flagged


def _looks(rng, n, centre, spread=0.3, light=0.5):
    """``n`` photos' looks around ``centre`` (unit vectors) and brightness around ``light``."""
    from linewatch.core.drift import Looks

    v = centre + spread * rng.normal(size=(n, centre.size))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return Looks(v, rng.normal(light, 0.05, n))


def test_what_the_photos_look_like_is_compared_beside_their_scores():
    from linewatch.core.drift import Looks

    rng = np.random.default_rng(3)
    centre = rng.normal(size=32)
    centre /= np.linalg.norm(centre)
    ref_scores, ref = rng.normal(0, 1, 80), _looks(rng, 80, centre)
    same = score_drift(ref_scores, rng.normal(0, 1, 200), reference_looks=ref, recent_looks=_looks(rng, 200, centre))
    assert same.level == "ok" == same.look_level == same.brightness_level, same
    assert abs(same.brightness_change) < 0.05 and "photos look as when" in same.reason
    # a dimmer lamp the scores do not show: the brightness does, either way
    dim = score_drift(
        ref_scores, rng.normal(0, 1, 200), reference_looks=ref, recent_looks=_looks(rng, 200, centre, light=0.4)
    )
    assert dim.scores_level == "ok" and dim.brightness_level == "drift" == dim.level and dim.brightness_auroc < 0.2
    assert dim.brightness_change == pytest.approx(-0.2, abs=0.03) and "21% darker" in dim.reason
    assert "check the light and the camera" in dim.reason
    # the camera moved: the photos are farther from every reference photo than those are from each other
    other = centre + 0.4 * rng.normal(size=32)
    moved = score_drift(
        ref_scores, rng.normal(0, 1, 200), reference_looks=ref, recent_looks=_looks(rng, 200, other / 2)
    )
    assert moved.look_level == "drift" == moved.level and moved.look_auroc > 0.75 and moved.look_p < 1e-4
    assert "photos look unlike" in moved.reason
    # photos closer to the reference than its own are not drift (one-sided)
    closer = score_drift(
        ref_scores, rng.normal(0, 1, 200), reference_looks=ref, recent_looks=_looks(rng, 200, centre, spread=0.05)
    )
    assert closer.look_level == "ok" and closer.look_auroc < 0.5
    # missing looks on either side are left out of the comparison, not a level
    for a, b in ((Looks(), _looks(rng, 200, centre)), (ref, Looks()), (ref, Looks(None, np.full(200, 0.5)))):
        found = score_drift(ref_scores, rng.normal(0, 1, 200), reference_looks=a, recent_looks=b)
        assert found.look_level == "unknown" and found.look_auroc is None and found.level == "ok"
    # another embedding size (another backbone) is not compared
    wrong = Looks(np.eye(200, 16, dtype=np.float32), None)
    assert score_drift(ref_scores, rng.normal(0, 1, 200), reference_looks=ref, recent_looks=wrong).look_auroc is None
    few = score_drift(ref_scores, rng.normal(0, 1, 200), reference_looks=ref, recent_looks=_looks(rng, 10, centre))
    assert few.look_level == few.brightness_level == "unknown"


def test_nearest_distance_leaves_each_reference_photo_out():
    from linewatch.core.drift import nearest_distance

    ref = np.eye(3, dtype=np.float32)
    ref[2] = [np.sqrt(0.5), np.sqrt(0.5), 0]
    np.testing.assert_allclose(nearest_distance(ref), [1 - np.sqrt(0.5), 1 - np.sqrt(0.5), 1 - np.sqrt(0.5)], 1e-6)
    np.testing.assert_allclose(nearest_distance(ref, ref[:1]), [0.0], atol=1e-6)


def test_the_trend_groups_consecutive_parts_and_the_band_brackets_the_reference():
    from linewatch.core.drift import Looks, drift_trend, reference_band

    times = list(range(100))
    scores = [0.0] * 50 + [1.0] * 50
    lit = [None] * 20 + [0.5] * 30 + [0.4] * 50  # the first parts stored before brightness was kept
    trend = drift_trend(times, scores, lit, None, windows=10)
    assert [w["parts"] for w in trend] == [10] * 10 and [w["until"] for w in trend] == list(range(9, 100, 10))
    assert [w["score"] for w in trend] == [0.0] * 5 + [1.0] * 5
    assert [w["brightness"] for w in trend] == [None, None] + [0.5] * 3 + [0.4] * 5
    assert all(w["look"] is None for w in trend)
    assert len(drift_trend(times[:7], scores[:7], windows=24)) == 7 and drift_trend([], []) == []
    uneven = drift_trend(times[:50], scores[:50], windows=24)
    assert len(uneven) == 24 and sum(w["parts"] for w in uneven) == 50

    band = reference_band(np.arange(101.0))
    assert band["score"] == [5.0, 50.0, 95.0] and band["brightness"] is None and band["look"] is None
    ref = Looks(np.eye(4, dtype=np.float32), np.linspace(0.4, 0.6, 4))
    band = reference_band([1.0, 2.0], ref)
    assert band["look"] == [1.0, 1.0, 1.0] and band["brightness"][1] == pytest.approx(0.5)


def test_the_recent_photos_distances_are_kept_for_the_caller_and_ranked_farthest_first():
    from linewatch.core.drift import Looks, farthest_first, nearest_distance

    rng = np.random.default_rng(7)
    ref = Looks(np.eye(12, dtype=np.float32)[:10], None)
    now = rng.normal(size=(40, 12)).astype(np.float32)
    now /= np.linalg.norm(now, axis=1, keepdims=True)
    found = score_drift(rng.normal(0, 1, 40), rng.normal(0, 1, 40), reference_looks=ref, recent_looks=Looks(now))
    np.testing.assert_allclose(found.look_distances, nearest_distance(ref.vectors, now))
    assert "look_distances" not in found.to_dict() and found.look_auroc is not None
    # distances are kept even where too few photos make no test (the trend still charts them)
    few = score_drift(rng.normal(0, 1, 40), rng.normal(0, 1, 40), reference_looks=ref, recent_looks=Looks(now[:5]))
    assert few.look_auroc is None and len(few.look_distances) == 5
    assert farthest_first(np.array([0.1, 0.5, 0.3, 0.5]), 3) == [1, 3, 2]  # ties in the order given
