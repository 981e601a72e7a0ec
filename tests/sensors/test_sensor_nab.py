"""NAB's scoring rules on series small enough to work out by hand."""

import numpy as np
import pytest

from linewatch.sensors.nab import (
    best_threshold,
    corpus_score,
    normalise,
    probationary_length,
    scaled_sigmoid,
    sweep_file,
)


def test_sigmoid_and_probation():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0
    assert probationary_length(1000) == 150
    assert probationary_length(100_000) == 750


def test_earliest_detection_in_a_window_scores_one_and_later_ones_are_ignored():
    n = 1000
    scores = np.zeros(n)
    scores[500] = 0.9  # the window's first row
    scores[510] = 0.95  # a later row of the same window, scored higher
    sweep = sweep_file(scores, [(500, 549)], "standard")
    assert corpus_score([sweep], 0.9) == pytest.approx(1.0)
    assert 0 < corpus_score([sweep], 0.95) < 1.0  # only the later detection
    assert corpus_score([sweep], 1.0) == pytest.approx(-1.0)  # missed window


def test_false_positives_cost_their_weight_and_probation_is_free():
    n = 1000
    scores = np.zeros(n)
    scores[50] = 1.0  # in the probationary period: ignored
    scores[300] = 1.0  # before any window: full fp weight
    sweep = sweep_file(scores, [(800, 849)], "reward_low_FP_rate")
    assert corpus_score([sweep], 1.0) == pytest.approx(-0.22 - 1.0)


def test_normalised_score_is_0_for_null_and_100_for_perfect():
    n = 1000
    windows = [(400, 449), (700, 749)]
    perfect = np.zeros(n)
    perfect[[400, 700]] = 1.0
    for profile in ("standard", "reward_low_FN_rate"):
        sw = [sweep_file(perfect, windows, profile)]
        thr, raw = best_threshold(sw)
        assert normalise(raw, sw, profile) == pytest.approx(100.0)
        null = [sweep_file(np.zeros(n), windows, profile)]
        assert normalise(corpus_score(null, 0.5), null, profile) == pytest.approx(0.0)
