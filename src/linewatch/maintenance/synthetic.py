"""Small generated data for tests and demos: run-to-failure sensor histories of engines whose health decays
exponentially (under one or several operating regimes that shift every sensor's level), and a table of machine
readings whose failures follow simple physical rules, like AI4I's generator."""

from __future__ import annotations

import numpy as np
import pandas as pd


def run_to_failure(
    n_units: int = 30,
    *,
    regimes: int = 1,
    seed: int = 0,
    min_life: int = 60,
    max_life: int = 130,
    n_sensors: int = 6,
    cut: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """(table with unit, cycle, setting_1..2, sensor_1..n; true RUL per unit at its last row). With ``cut`` each
    history stops at a random cycle before failure, as C-MAPSS's test files do; otherwise it runs to failure."""
    fleet = np.random.default_rng(12345)  # the fleet (its regimes and sensors) is the same whatever the seed
    points = fleet.uniform(-3, 3, size=(regimes, 2)) if regimes > 1 else np.zeros((1, 2))
    level = fleet.normal(0, 5, size=(regimes, n_sensors))
    sens = fleet.uniform(0.5, 2.0, n_sensors) * fleet.choice([-1, 1], n_sensors)
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for u in range(1, n_units + 1):
        life = int(rng.integers(min_life, max_life + 1))
        stop = int(rng.integers(min(20, life - 1), life)) if cut else life
        t = np.arange(1, stop + 1)
        wear = np.exp(3.0 * (t / life)) - 1.0  # 0 at start, ~19 at failure; slow then fast, as real wear
        r = rng.integers(0, regimes, len(t))
        settings = points[r] + rng.normal(0, 0.002, (len(t), 2))
        sensors = level[r] + wear[:, None] * sens[None, :] * 0.15 + rng.normal(0, 0.3, (len(t), n_sensors))
        frame = pd.DataFrame(sensors, columns=[f"sensor_{i}" for i in range(1, n_sensors + 1)])
        frame.insert(0, "setting_2", settings[:, 1])
        frame.insert(0, "setting_1", settings[:, 0])
        frame.insert(0, "cycle", t)
        frame.insert(0, "unit", u)
        frames.append(frame)
        truth.append(life - stop)
    return pd.concat(frames, ignore_index=True), np.array(truth, dtype=np.float64)


def machine_readings(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """AI4I-like rows in time order: a failure when power leaves a band (PWF) or heat cannot dissipate (HDF), plus
    rare random failures (RNF); ``Machine failure`` is any of them."""
    rng = np.random.default_rng(seed)
    air = 300 + np.cumsum(rng.normal(0, 0.05, n))
    process = air + 10 + rng.normal(0, 1.0, n)
    speed = rng.normal(1500, 150, n)
    torque = np.clip(rng.normal(40, 10, n), 3, None)
    kind = rng.choice(["L", "M", "H"], n, p=[0.6, 0.3, 0.1])
    power = torque * speed * 2 * np.pi / 60
    pwf = ((power < 3500) | (power > 9000)).astype(int)
    hdf = ((process - air < 9.0) & (speed < 1400)).astype(int)
    rnf = (rng.random(n) < 0.002).astype(int)
    return pd.DataFrame(
        {
            "UDI": np.arange(1, n + 1),
            "Type": kind,
            "Air temperature [K]": air,
            "Process temperature [K]": process,
            "Rotational speed [rpm]": speed,
            "Torque [Nm]": torque,
            "Machine failure": pwf | hdf | rnf,
            "HDF": hdf,
            "PWF": pwf,
            "RNF": rnf,
        }
    )
