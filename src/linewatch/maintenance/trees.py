"""Gradient-boosted trees as plain arrays: a fitted scikit-learn HistGradientBoostingClassifier is flattened into
node arrays (feature, threshold, children, leaf value) that are saved as safetensors and evaluated with NumPy.
This is how a failure-risk model is saved without pickle, and loading it needs no scikit-learn internals."""

from __future__ import annotations

import numpy as np


def forest_arrays(clf) -> dict[str, np.ndarray]:
    """The nodes of every tree of a binary HistGradientBoostingClassifier or a HistGradientBoostingRegressor,
    concatenated (children re-indexed)."""
    nodes = [tree.nodes for (tree,) in clf._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        raise ValueError("categorical splits are not supported; encode categories as numbers")
    sizes = np.array([len(n) for n in nodes], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    cat = np.concatenate(nodes) if nodes else np.zeros(0, dtype=clf._predictors[0][0].nodes.dtype)
    shift = np.repeat(offsets, sizes)
    return {
        "roots": offsets,
        "feature": cat["feature_idx"].astype(np.int64),
        "threshold": cat["num_threshold"].astype(np.float64),
        "missing_left": cat["missing_go_to_left"].astype(np.int64),
        "left": cat["left"].astype(np.int64) + shift,
        "right": cat["right"].astype(np.int64) + shift,
        "leaf": cat["is_leaf"].astype(np.int64),
        "value": cat["value"].astype(np.float64),
        "baseline": np.asarray(clf._baseline_prediction, dtype=np.float64).reshape(1),
    }


def forest_raw(forest: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The raw score (log-odds) of every row: baseline plus the leaf values its path reaches in each tree."""
    roots = forest["roots"]
    if len(roots) == 0:
        return np.full(len(x), forest["baseline"][0])
    idx = np.broadcast_to(roots, (len(x), len(roots))).copy()
    rows = np.arange(len(x))[:, None]
    leaf, feature, threshold = forest["leaf"].astype(bool), forest["feature"], forest["threshold"]
    while True:
        active = ~leaf[idx]
        if not active.any():
            break
        v = x[rows, feature[idx]]
        go_left = np.where(np.isnan(v), forest["missing_left"][idx].astype(bool), v <= threshold[idx])
        nxt = np.where(go_left, forest["left"][idx], forest["right"][idx])
        idx = np.where(active, nxt, idx)
    return forest["baseline"][0] + forest["value"][idx].sum(axis=1)
