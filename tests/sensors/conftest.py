import numpy as np
import pytest

SENSORS = ["a", "b", "c"]


def machine(n: int, seed: int = 0, start: int = 0) -> np.ndarray:
    """Three coupled sensors: two slow cycles and a noisy one that follows the first."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + n)
    a = 20 + 2 * np.sin(t / 30) + rng.normal(0, 0.2, n)
    b = 5 + 0.5 * np.cos(t / 45) + 0.1 * a + rng.normal(0, 0.05, n)
    c = 100 + 10 * np.sin(t / 30 + 1) + rng.normal(0, 1, n)
    return np.column_stack([a, b, c])


@pytest.fixture(scope="session")
def normal() -> np.ndarray:
    return machine(1200)


@pytest.fixture(scope="session")
def faulty() -> tuple[np.ndarray, np.ndarray]:
    """600 later rows with a spike burst on b (rows 200-219); labels mark it."""
    x = machine(600, seed=1, start=1200)
    y = np.zeros(600, dtype=bool)
    x[200:220, 1] += 3.0
    y[200:220] = True
    return x, y


@pytest.fixture(scope="session")
def make_machine():
    return machine
