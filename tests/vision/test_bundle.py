"""The export as one zip: unzipped, a model directory that ONNX Runtime scores with, verdicts and search vectors
included; a model without a usable export gets a clear error and no file."""

import json
import shutil
import zipfile

import numpy as np
import pytest

from linewatch.errors import ModelFileError
from linewatch.vision.bundle import write_bundle
from linewatch.vision.export import export_onnx
from linewatch.vision.runtime import OnnxModel


@pytest.fixture
def exported(trained, tmp_path):
    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    return model


def test_the_bundle_scores_like_the_model_directory(exported, synthetic, tmp_path):
    out = write_bundle(exported, tmp_path / "b.zip")
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["crops.onnx", "manifest.json", "model.onnx"]  # no PyTorch tensors
        z.extractall(tmp_path / "unzipped")
    manifest = json.loads((tmp_path / "unzipped" / "manifest.json").read_text())
    assert sorted(manifest["files"]) == ["onnx", "onnx_crops"]
    images = sorted((synthetic / "test" / "spot").iterdir())[:2]
    want = OnnxModel(exported).predict(images)
    got = OnnxModel(tmp_path / "unzipped").predict(images)
    for a, b in zip(want, got, strict=True):
        assert (a.score, a.verdict, a.normalized_score) == (b.score, b.verdict, b.normalized_score)
        assert b.embeddings is not None
        np.testing.assert_array_equal(a.embeddings.defects(), b.embeddings.defects())


def test_no_export_no_bundle(trained, tmp_path):
    _, path = trained
    with pytest.raises(ModelFileError, match="linewatch export"):
        write_bundle(path, tmp_path / "b.zip")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_an_export_without_the_crop_graph_is_not_bundled(exported, tmp_path):
    manifest = json.loads((exported / "manifest.json").read_text())
    del manifest["files"]["onnx_crops"]
    (exported / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelFileError, match="again"):
        write_bundle(exported, out / "b.zip")
    assert list(out.iterdir()) == []


def test_a_tampered_graph_is_not_bundled(exported, tmp_path):
    with open(exported / "model.onnx", "ab") as f:
        f.write(b"\0")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelFileError, match="sha256"):
        write_bundle(exported, out / "b.zip")
    assert list(out.iterdir()) == []
