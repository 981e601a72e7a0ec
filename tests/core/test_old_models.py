"""Models of the first format, written and exported by the code before the shared estimator contract (commit
08f30cd, see tests/fixtures/README.md), still load with today's code and score as they did then, through
PyTorch and through ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linewatch.vision.runtime import OnnxModel, open_model
from linewatch.vision.saving import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORD = json.loads((FIXTURES / "predictions-v1.json").read_text())
MODELS = sorted(RECORD["models"])


def _check(preds, want: list[dict]) -> None:
    assert len(preds) == len(want)
    for p, w in zip(preds, want, strict=True):
        assert p.score == pytest.approx(w["score"], rel=1e-4, abs=1e-4)
        assert p.normalized_score == pytest.approx(w["normalized_score"], abs=1e-4)
        assert p.verdict == w["verdict"]


def _images(name: str) -> list[Path]:
    return [FIXTURES / p for p in RECORD["models"][name]["images"]]


def test_the_fixtures_are_of_the_first_format():
    assert RECORD["made_by"]["commit"].startswith("08f30cd")
    for name in MODELS:
        manifest = json.loads((FIXTURES / "models" / name / "manifest.json").read_text())
        assert manifest["format_version"] == 1 and "engine" not in manifest  # the engine key came later
        assert "onnx" in manifest["files"]


@pytest.mark.parametrize("name", MODELS)
def test_old_model_loads_and_scores_as_before_with_torch(name):
    det = load(FIXTURES / "models" / name)
    assert det.method == name.removesuffix("-v1")
    assert det.is_fitted
    _check(det.predict(_images(name)), RECORD["models"][name]["torch"])


@pytest.mark.parametrize("name", MODELS)
def test_old_onnx_export_loads_and_scores_as_before(name):
    model = open_model(FIXTURES / "models" / name)
    assert isinstance(model, OnnxModel)
    _check(model.predict(_images(name)), RECORD["models"][name]["onnx"])
    # and the two paths of the old model agree with each other today
    _check(load(FIXTURES / "models" / name).predict(_images(name)), RECORD["models"][name]["onnx"])
