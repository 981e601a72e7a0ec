"""Failure risk: the trees saved as arrays score as scikit-learn does, the rules behind failures are learned, and
probabilities are calibrated."""

from __future__ import annotations

import numpy as np
import pytest

from linewatch.maintenance.failure import FailureRisk
from linewatch.maintenance.metrics import failure_metrics
from linewatch.maintenance.synthetic import machine_readings
from linewatch.maintenance.trees import forest_arrays, forest_raw


def test_tree_arrays_score_exactly_as_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 4))
    y = ((x[:, 0] * x[:, 1] > 0.3) | (x[:, 2] > 1.5)).astype(int)
    x[::17, 3] = np.nan  # missing values follow the learned side
    clf = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    np.testing.assert_allclose(forest_raw(forest_arrays(clf), x), clf.decision_function(x), atol=1e-9)


@pytest.fixture(scope="module")
def split():
    df = machine_readings(4000, seed=0)
    return df.iloc[:3000], df.iloc[3000:]  # time-ordered: learn on the past, judge on the future


@pytest.fixture(scope="module")
def model(split):
    return FailureRisk(max_iter=40, folds=3).fit(split[0])


def test_modes_are_found_and_learned(split, model):
    _, test = split
    assert model.target_ == "Machine failure" and model.modes_ == ["HDF", "PWF", "RNF"]
    assert "UDI" not in model.numeric_ and model.categories_ == {"Type": ["H", "L", "M"]}
    p = model.predict(test)
    assert p.ids.tolist() == test["UDI"].tolist()
    for mode in ("HDF", "PWF"):
        m = failure_metrics(p.modes[mode], test[mode].to_numpy())
        assert m["roc_auc"] > 0.97 and m["recall"] > 0.7, (mode, m)
    assert failure_metrics(p.probability, test["Machine failure"].to_numpy())["roc_auc"] > 0.95


def test_probabilities_are_calibrated(split, model):
    _, test = split
    p = model.predict(test).probability
    y = test["Machine failure"].to_numpy()
    assert abs(p.mean() - y.mean()) < 0.03  # the predicted failure rate matches the observed one
    high = p > 0.5
    assert y[high].mean() > 0.8 and y[p < 0.05].mean() < 0.03


def test_a_table_without_labels_is_a_clear_error(split):
    from linewatch.errors import LinewatchError

    with pytest.raises(LinewatchError, match="label"):
        FailureRisk(max_iter=5, folds=2).fit(split[0].drop(columns=["Machine failure"]))
