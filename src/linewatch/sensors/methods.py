"""The sensor engine's methods and their parameters: the one list the detectors' constructors, the command line
(``--param name=value``), save/load and ``linewatch sensors methods`` all read. Light to import (no PyOD, no
scikit-learn, no pandas): the CLI's help and the registry's error messages cost nothing."""

from __future__ import annotations

from linewatch.core.params import Param, Params
from linewatch.core.registry import Registry

DEFAULT_METHOD = "mahalanobis"


class SensorParams(Params):
    """What every table detector shares: the feature pipeline, the threshold calibration and the alerts."""

    normalise: str = Param("robust", "per-sensor scaling learned on the training data", choices=("robust", "standard"))
    windows: list[int] = Param([10, 30], "rolling windows in rows: a mean and a std feature per sensor and window")
    lags: list[int] = Param([], "lagged copies of each sensor, in rows")
    diffs: list[int] = Param([1], "differences over these many rows, per sensor")
    fill_limit: int = Param(5, "missing values carried forward for at most N rows; longer gaps read as normal", ge=0)
    gap_factor: float = Param(
        5.0, "a time step over N x the training's median step starts a new segment (windows restart)", gt=1
    )
    drift_ratio: float = Param(
        0.0,
        "a sensor whose training spread is over N x its short-term noise is judged against its recent level (0: never)",
        ge=0,
    )
    baseline_window: int = Param(120, "rows of the recent level a wandering sensor is judged against", ge=2)
    scale_floor: float = Param(
        0.0, "every feature's spread is taken as at least N x its sensor's value spread (0: its own)", ge=0
    )
    holdout: float = Param(0.2, "last fraction of the training rows held out to calibrate the threshold", gt=0, lt=0.9)
    false_alarm_rate: float = Param(0.01, "target false-alarm rate on the held-out normal rows", gt=0, lt=0.5)
    threshold_margin: float = Param(1.0, "the calibrated threshold is multiplied by this", ge=0.5, le=10)
    max_train_rows: int = Param(50_000, "training rows kept for the model (evenly spaced when there are more)", ge=100)
    top_sensors: int = Param(3, "sensors named in each alert", ge=1, le=100)
    seed: int = Param(0, "seed of randomised methods", ge=0, le=2**32 - 1)


class MahalanobisParams(SensorParams):
    # a squared distance: 2.5 x the held-out quantile (the held-out rows are few and close in time to the fit)
    threshold_margin: float = Param(2.5, "the calibrated threshold is multiplied by this", ge=0.5, le=10)
    drift_ratio: float = Param(
        2.5,
        "a sensor whose training spread is over N x its short-term noise is judged against its recent level (0: never)",
        ge=0,
    )
    shrinkage: float | None = Param(None, "covariance shrinkage in [0, 1]; default: Ledoit-Wolf's estimate", ge=0, le=1)


class IForestParams(SensorParams):
    n_estimators: int = Param(200, "isolation trees", ge=10, le=5000)
    max_samples: int = Param(256, "rows per tree", ge=16)


class NeighboursParams(SensorParams):
    n_neighbors: int = Param(10, "neighbours compared with", ge=1, le=500)


class HBOSParams(SensorParams):
    n_bins: int = Param(20, "histogram bins per feature", ge=2, le=1000)


class PCAParams(SensorParams):
    n_components: float | None = Param(None, "principal components kept (a fraction: explained variance)", gt=0)


class AutoEncoderParams(SensorParams):
    hidden: list[int] = Param([32, 8], "hidden layer widths of the encoder", ge=1, le=4096, min_items=1)
    epochs: int = Param(30, "training epochs", ge=1, le=1000)
    batch_size: int = Param(64, "rows per training step (at most the training rows)", ge=4, le=65536)
    learning_rate: float = Param(1e-3, "Adam learning rate", gt=0, lt=1)


#: the methods an ensemble can hold: every table method but the ensemble itself (the registry below, checked by tests)
MEMBER_METHODS = ("mahalanobis", "iforest", "ecod", "copod", "hbos", "knn", "lof", "pca", "autoencoder")


class EnsembleParams(SensorParams):
    members: list[str] = Param(
        ["mahalanobis", "ecod", "iforest"], "methods whose rank-scores are averaged", choices=MEMBER_METHODS
    )


class StreamParams(Params):
    """The streaming detector: one univariate series per column, scored point by point with O(1) state."""

    alpha: float = Param(0.01, "weight of a new point in the running mean and variance (about 1/memory)", gt=0, lt=1)
    learning_period: int = Param(300, "points per series before it can alert (its scores still update)", ge=2)
    short_window: float = Param(0.3, "weight of a new score in the short-term score average", gt=0, le=1)
    score_alpha: float = Param(0.001, "weight of a new score in the long-term score distribution", gt=0, lt=1)
    threshold: float = Param(3.0, "alert at this surprise: -log10 of the short-term average's tail probability", gt=0)
    suppress: int = Param(
        300, "points after an alert in which the series stays quiet (scores 0): one alert per event", ge=0
    )
    clip: float = Param(8.0, "a point moves the running statistics as if it were at most N std away", gt=0)


class SurpriseParams(Params):
    """The surprise detector (``linewatch.sensors.surprise``): four raw scores per point, HTM's anomaly likelihood on
    each, one alert per event. The defaults are the ones measured on NAB (docs/benchmarks.md)."""

    learning_period: int = Param(
        750, "points per series before it can alert (the likelihood starts after half of them)", ge=2
    )
    window: int = Param(8, "points in a pattern (the new-pattern score)", ge=2, le=64)
    pattern_bits: int = Param(16, "a table of 2^N bits per series remembers the pattern cells seen", ge=8, le=24)
    radius: float = Param(0.14, "cell size of a pattern: each point's level in steps of this share of the range", gt=0)
    density_band: float = Param(0.02, "earlier points within this share of the range count as the same level", gt=0)
    rare_share: float = Param(0.01, "a level held by fewer than this share of earlier points is rare", gt=0, lt=1)
    smooth: int = Param(6, "points averaged for the rare-smoothed-level score (at most window)", ge=1)
    alpha: float = Param(0.01, "weight of a new point in the running mean and variance (deviation score)", gt=0, lt=1)
    likelihood_window: int = Param(14, "points in the short-term average of each raw score", ge=1, le=1000)
    likelihood_memory: int = Param(3000, "memory of the long-term distribution of that average, in points", ge=10)
    level_weight: float = Param(0.8, "weight of the two rare-level surprises against the new-pattern one", ge=0)
    deviation_weight: float = Param(0.6, "weight of the deviation surprise against the new-pattern one", ge=0)
    range_tolerance: float = Param(
        0.05, "a point beyond the range seen so far by more than this share of it is a full surprise", ge=0
    )
    rearm: int = Param(100, "points after an alarm-level surprise in which another counts only as a warning", ge=0)
    threshold: float = Param(0.5, "alert at this score (surprise / 10: 0.5 is a one-in-100,000 average)", gt=0, le=1)


METHODS = Registry("sensors")
_S = "linewatch.sensors.detectors"
METHODS.add(
    "mahalanobis",
    MahalanobisParams,
    f"{_S}:Mahalanobis",
    "scikit-learn: distance from the training features' mean under a shrunk covariance (the default)",
    "sensors",
)
METHODS.add("iforest", IForestParams, f"{_S}:IForest", "PyOD: isolation forest", "sensors")
METHODS.add("ecod", SensorParams, f"{_S}:ECOD", "PyOD: empirical-CDF tail probabilities", "sensors")
METHODS.add("copod", SensorParams, f"{_S}:COPOD", "PyOD: copula tail probabilities", "sensors")
METHODS.add("hbos", HBOSParams, f"{_S}:HBOS", "PyOD: histogram per feature", "sensors")
METHODS.add("knn", NeighboursParams, f"{_S}:KNN", "PyOD: distance to the k-th training neighbour", "sensors")
METHODS.add("lof", NeighboursParams, f"{_S}:LOF", "PyOD: local outlier factor", "sensors")
METHODS.add("pca", PCAParams, f"{_S}:PCA", "PyOD: weighted distance in the principal components", "sensors")
METHODS.add("autoencoder", AutoEncoderParams, f"{_S}:AutoEncoder", "PyOD: reconstruction error (torch)", "sensors")
METHODS.add("ensemble", EnsembleParams, f"{_S}:Ensemble", "average of several methods' rank-scores", "sensors")
