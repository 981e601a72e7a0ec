"""The maintenance engine's methods and their parameters: the one list the estimators' constructors, the command
line and save/load read. Light to import (no torch, no scikit-learn)."""

from __future__ import annotations

from linewatch.core.params import Param, Params
from linewatch.core.registry import Registry

COLUMN = r"[A-Za-z0-9_ .\[\]-]{1,100}"  # a column name of a table


class RulParams(Params):
    window: int = Param(30, "cycles of history the network reads per prediction", ge=5, le=500)
    rul_cap: float = Param(125.0, "training target: RUL capped here (piecewise-linear degradation)", gt=0, le=10_000)
    folds: int = Param(
        5, "ensemble members, each trained with one fold of units held out for the intervals", ge=2, le=20
    )
    epochs: int = Param(40, "training passes over the windows, per member", ge=1, le=1000)
    batch_size: int = Param(1024, "windows per optimisation step", ge=8, le=8192)
    learning_rate: float = Param(2e-3, "Adam learning rate (cosine-decayed to zero)", gt=0, le=1)
    channels: int = Param(32, "convolution channels", ge=4, le=512)
    blend: float | None = Param(
        None,
        "weight of boosted trees on window features against the CNNs (default: chosen on held-out units)",
        ge=0,
        le=1,
    )
    tree_iter: int = Param(300, "boosting iterations of each tree member", ge=1, le=5000)
    history: bool = Param(
        True, "also give the trees each sensor's slope over the unit's whole history so far (its wear rate)"
    )
    coverage: float = Param(0.9, "nominal coverage of the RUL intervals", gt=0, lt=1)
    interval_horizon: float | None = Param(
        None,
        "intervals are calibrated for units within this many cycles of failure, one random cut point per held-out "
        "unit (default: the training units' median life)",
        gt=0,
        le=1_000_000,
    )
    max_regimes: int = Param(8, "most operating regimes looked for in the settings columns", ge=1, le=32)
    age: bool = Param(False, "also feed the cycle number (age) to the network")
    smoothing: float = Param(0.1, "exponential smoothing weight of each new sensor reading (1: none)", gt=0, le=1)
    seed: int = Param(0, "seed of the folds, the initial weights and the shuffling", ge=0, le=2**32 - 1)
    threads: int = Param(
        1,
        "CPU threads of training and prediction (0: every core); the networks are small, so one is the cheapest",
        ge=0,
        le=256,
    )


class FailureParams(Params):
    label_column: str | None = Param(
        None, "label column of any failure (default: 'Machine failure' or 'failure')", pattern=COLUMN
    )
    modes: list[str] | None = Param(
        None, "failure-mode label columns, comma separated (default: 0/1 columns named like TWF, HDF)", pattern=COLUMN
    )
    max_iter: int = Param(100, "boosting iterations per model", ge=1, le=5000)
    learning_rate: float = Param(0.1, "boosting learning rate", gt=0, le=1)
    max_leaf_nodes: int = Param(15, "leaves per tree", ge=2, le=1024)
    folds: int = Param(5, "time-ordered blocks: each model holds one out to calibrate the probabilities", ge=2, le=20)
    seed: int = Param(0, "seed of the boosting", ge=0, le=2**32 - 1)
    threads: int = Param(
        1, "CPU threads of the boosting (0: every core); more than the free cores wait on each other", ge=0, le=256
    )


METHODS = Registry("maintenance")
METHODS.add(
    "cnn",
    RulParams,
    "linewatch.maintenance.rul:RulCNN",
    "remaining useful life: an ensemble of 1-D CNNs over sensor windows, conformal intervals (--target rul)",
    "maintenance",
)
METHODS.add(
    "boosted",
    FailureParams,
    "linewatch.maintenance.failure:FailureRisk",
    "failure probability per mode: gradient-boosted trees, calibrated on held-out time blocks (--target failure)",
    "maintenance",
)

TARGET_METHOD = {"rul": "cnn", "failure": "boosted"}
