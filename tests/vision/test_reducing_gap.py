"""Resizing large images in two steps (Pillow's ``reducing_gap``, the default for new models): a box reduction by a
whole factor, then the bilinear filter; models saved before keep the one antialiased resize they were trained with."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from linewatch.errors import LinewatchError
from linewatch.vision.images import Preprocess


def _photo(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(w)
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BICUBIC)


def test_two_steps_are_pillows_reducing_gap_and_close_to_one_resize():
    img = _photo(1200, 900)
    one, two = Preprocess(128), Preprocess(128, reducing_gap=1.5)
    expect = Image.Image.resize(img, (128, 128), Image.BILINEAR, reducing_gap=1.5)
    np.testing.assert_array_equal(two(img), Preprocess(128)(expect))  # a 128 px image is not resized again
    a, b = one(img), two(img)
    assert not np.array_equal(a, b)  # 1200 / 128 > 3: reduced by 6 first
    assert np.abs(a - b).mean() < 0.05  # in normalised units (one grey level is about 0.017)
    # a small image is not reduced: the same pixels either way
    small = _photo(160, 160)
    np.testing.assert_array_equal(one(small), two(small))


def test_new_models_resize_in_two_steps_and_the_setting_is_checked(synthetic):
    from linewatch.vision.datasets import load_dataset
    from linewatch.vision.patchcore import PatchCore

    train = load_dataset(synthetic).train[:8]
    det = PatchCore(image_size=64, auto="off", self_check=False).fit(train)
    assert det.params_["reducing_gap"] == 1.5 and det.preprocess.reducing_gap == 1.5
    off = PatchCore(image_size=64, auto="off", self_check=False, reducing_gap=0).fit(train)
    assert off.preprocess.reducing_gap is None
    with pytest.raises(LinewatchError, match="reducing_gap"):
        PatchCore(image_size=64, reducing_gap=1.0).fit(train)


def test_a_model_saved_before_keeps_one_resize_on_both_paths(trained, tmp_path):
    """A manifest without the setting: the PyTorch path and the ONNX runtime both resize in one step, and score a
    large photo alike; the same model with the setting given resizes it in two."""
    pytest.importorskip("onnxruntime")
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.saving import load

    _, path = trained
    old = tmp_path / "old"
    shutil.copytree(path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["hyperparameters"].pop("reducing_gap", None)
    (old / "manifest.json").write_text(json.dumps(manifest))
    export_onnx(old)
    det, rt = load(old), OnnxModel(old)
    assert det.params_["reducing_gap"] == 0 and det.preprocess.reducing_gap is None and rt.preprocess == det.preprocess
    photo = _photo(1600, 1200)
    a, b = det.predict([photo])[0], rt.predict([photo])[0]
    assert abs(a.score - b.score) <= 1e-3 * max(1.0, abs(a.score))

    new = load(path)
    assert new.params_["reducing_gap"] == 1.5 and new.preprocess.reducing_gap == 1.5
    assert not np.array_equal(new.preprocess(photo), det.preprocess(photo))


def test_a_manifest_with_an_impossible_setting_is_a_clear_error(trained, tmp_path):
    """Pillow refuses a gap of 1 or less while resizing; a hand-edited manifest says so when the model opens."""
    pytest.importorskip("onnxruntime")
    from linewatch.errors import ModelFileError
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.saving import load

    _, path = trained
    model = tmp_path / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    manifest = json.loads((model / "manifest.json").read_text())
    for bad in (0.5, "fast", 40):
        manifest["hyperparameters"]["reducing_gap"] = bad
        (model / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelFileError, match="reducing_gap"):
            OnnxModel(model)
        with pytest.raises(ModelFileError):
            load(model)
