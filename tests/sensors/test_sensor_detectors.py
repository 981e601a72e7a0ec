"""The detector contract, for every registered method, on small generated series."""

import json

import numpy as np
import pytest

from linewatch.core.estimator import NotFittedError
from linewatch.errors import LinewatchError, ModelFileError
from linewatch.sensors.methods import METHODS
from linewatch.sensors.saving import load, save

SMALL = {"autoencoder": {"epochs": 2, "hidden": [8, 4]}, "iforest": {"n_estimators": 30}}


def create(name, **kw):
    return METHODS.create(name, **{**SMALL.get(name, {}), **kw})


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_fits_catches_a_burst_and_reloads(name, normal, faulty, tmp_path):
    det = create(name)
    assert det.fit(normal, sensors=["a", "b", "c"]) is det
    x, y = faulty
    before = {k: np.copy(v) for k, v in vars(det).items() if isinstance(v, np.ndarray)}
    scores = det.score(x)
    again = det.score(x)
    np.testing.assert_array_equal(scores, again)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(det, k), v, err_msg=f"score changed {k}")
    alarms = scores > det.threshold_
    assert alarms[y].mean() > 0.5, "most rows of the burst are caught"
    clear = np.r_[0:200, 260:600]  # rows whose 30-row windows do not reach the burst
    assert alarms[clear].mean() < 0.15, "few false alarms on normal rows (HBOS, the coarsest, has about 13%)"
    save(det, tmp_path / "m")
    np.testing.assert_allclose(load(tmp_path / "m").score(x), scores, rtol=1e-6)


def test_unfitted_and_bad_parameters_are_user_errors(normal):
    with pytest.raises(NotFittedError):
        METHODS.create("mahalanobis").score(normal)
    assert issubclass(NotFittedError, LinewatchError)
    for bad in ({"false_alarm_rate": 0.0}, {"windows": [0]}, {"holdout": 0.95}, {"normalise": "zscore"}):
        with pytest.raises(LinewatchError):
            METHODS.create("mahalanobis", **bad).fit(normal)
    with pytest.raises(LinewatchError, match="no parameter"):
        METHODS.create("mahalanobis", n_trees=3)
    with pytest.raises(LinewatchError, match="choose one of"):
        METHODS["nosuch"]
    for members in (["mahalanobis", "nosuch"], ["ensemble"]):
        with pytest.raises(LinewatchError, match="members must be one of mahalanobis, iforest"):
            METHODS.create("ensemble", members=members).fit(normal)


def test_too_few_rows_is_a_user_error(normal):
    with pytest.raises(LinewatchError, match="too few"):
        METHODS.create("mahalanobis").fit(normal[:10])


def test_attribution_names_the_faulty_sensor(normal, faulty):
    det = METHODS.create("mahalanobis").fit(normal, sensors=["a", "b", "c"])
    x, _ = faulty
    feats = det.features(x)
    shares = det.attribution(feats)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    top = det.top_contributors(shares[205:215])
    assert all(t[0]["sensor"] == "b" for t in top)
    assert len(top[0]) == 3


def test_threshold_meets_the_false_alarm_target_on_fresh_normal_rows(normal, make_machine):
    det = METHODS.create("mahalanobis", false_alarm_rate=0.02).fit(normal)
    fresh = make_machine(3000, seed=5, start=1200)
    assert det.predict(fresh).mean() < 0.06


def test_newer_format_and_other_engine_are_refused(normal, tmp_path):
    det = METHODS.create("pca").fit(normal)
    save(det, tmp_path / "m")
    path = tmp_path / "m" / "manifest.json"
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(ModelFileError, match="upgrade linewatch"):
        load(tmp_path / "m")
    path.write_text(json.dumps({**m, "engine": "vision"}))
    with pytest.raises(ModelFileError, match="vision model"):
        load(tmp_path / "m")


def test_a_tampered_array_is_refused(normal, tmp_path):
    save(METHODS.create("mahalanobis").fit(normal), tmp_path / "m")
    arr = np.load(tmp_path / "m" / "train_features.npy")
    np.save(tmp_path / "m" / "train_features.npy", arr * 2)
    with pytest.raises(ModelFileError, match="corrupt"):
        load(tmp_path / "m")


def test_saved_model_holds_no_pickle(normal, tmp_path):
    save(METHODS.create("iforest", n_estimators=20).fit(normal), tmp_path / "m")
    for p in (tmp_path / "m").iterdir():
        if p.suffix == ".npy":
            np.load(p, allow_pickle=False)
        else:
            json.loads(p.read_text())


def test_an_autoencoder_batch_larger_than_the_training_rows_still_trains(normal):
    """PyOD trains no step on a batch larger than its rows (and fails with an error of its own): the batch is cut."""
    det = create("autoencoder", batch_size=65536).fit(normal)
    assert np.isfinite(det.threshold_)


def test_an_ensemble_may_hold_every_other_method():
    from linewatch.sensors.methods import MEMBER_METHODS

    assert set(MEMBER_METHODS) == set(METHODS.names()) - {"ensemble"}


def test_ensemble_averages_member_ranks(normal, faulty):
    ens = METHODS.create("ensemble", members=["mahalanobis", "ecod"]).fit(normal)
    x, y = faulty
    s = ens.score(x)
    assert s[y].min() > np.median(s[~y])
