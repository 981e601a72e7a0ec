import pytest

pytest.importorskip("simpy")
pytest.importorskip("yaml")
