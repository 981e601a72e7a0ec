"""Operating regimes found by clustering the settings columns, and sensors normalised per regime.

Fleets such as C-MAPSS FD002/FD004 run under several operating conditions; a sensor's level there says more
about the condition than about wear. Clustering the settings and z-scoring each sensor within its regime removes
that, with no hand tuning: the number of regimes is the one whose clusters separate best (silhouette), and a
single regime is kept when no split separates well (FD001's settings are noise around one point)."""

from __future__ import annotations

import numpy as np

MIN_SILHOUETTE = 0.8  # well-separated operating points score ~0.99; noise around one point scores ~0.3-0.5
SAMPLE = 4000


def _standardise(settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = settings.mean(axis=0)
    scale = settings.std(axis=0)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def assign(settings: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
    """Index of the nearest regime centre of every row."""
    centers = state["centers"]
    if len(centers) == 1 or settings.shape[1] == 0:
        return np.zeros(len(settings), dtype=np.int64)
    z = (settings - state["settings_mean"]) / state["settings_scale"]
    d = ((z[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1).astype(np.int64)


def fit_regimes(settings: np.ndarray, sensors: np.ndarray, max_regimes: int, seed: int) -> dict[str, np.ndarray]:
    """Regime centres (in standardised settings) and each sensor's mean and scale per regime; ``keep`` marks the
    sensors that vary within some regime (constant ones carry no information)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n_set = settings.shape[1]
    mean, scale = _standardise(settings) if n_set else (np.zeros(0), np.ones(0))
    centers = np.zeros((1, n_set))
    if n_set and max_regimes > 1:
        z = (settings - mean) / scale
        rng = np.random.default_rng(seed)
        sample = z[rng.choice(len(z), min(SAMPLE, len(z)), replace=False)]
        best, best_score = None, MIN_SILHOUETTE
        for k in range(2, min(max_regimes, len(np.unique(sample, axis=0))) + 1):
            km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(sample)
            score = silhouette_score(sample, km.labels_, sample_size=min(2000, len(sample)), random_state=seed)
            if score > best_score:
                best, best_score = km.cluster_centers_, score
        if best is not None:
            centers = best[np.lexsort(best.T[::-1])]  # a stable order, whatever k-means' labels were
    state = {"settings_mean": mean, "settings_scale": scale, "centers": centers}
    regime = assign(settings, state)
    k, f = len(centers), sensors.shape[1]
    s_mean, s_scale = np.zeros((k, f)), np.ones((k, f))
    varies = np.zeros(f, dtype=bool)
    for r in range(k):
        rows = sensors[regime == r]
        if len(rows) == 0:
            continue
        s_mean[r] = rows.mean(axis=0)
        std = rows.std(axis=0)
        tiny = std <= 1e-9 * np.maximum(1.0, np.abs(s_mean[r]))
        s_scale[r] = np.where(tiny, 1.0, std)
        varies |= ~tiny
    state.update(sensor_mean=s_mean, sensor_scale=s_scale, keep=varies.astype(np.int64))
    return state


def normalise(settings: np.ndarray, sensors: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
    """Sensors z-scored within each row's regime, only the kept ones, as float32."""
    regime = assign(settings, state)
    z = (sensors - state["sensor_mean"][regime]) / state["sensor_scale"][regime]
    return z[:, state["keep"].astype(bool)].astype(np.float32)
