"""What the photos look like, kept for the drift watch (``linewatch.vision.appearance``): each good image's look and
brightness beside its score, from the same pass that scores it, the same as the service stores of each inspection."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from linewatch.errors import ModelFileError
from linewatch.vision import appearance
from linewatch.vision.datasets import load_dataset
from linewatch.vision.images import IMAGENET_MEAN, IMAGENET_STD


def _normalised(rgb: tuple[float, float, float]) -> np.ndarray:
    x = np.broadcast_to(np.asarray(rgb, np.float32)[None, :, None, None], (1, 3, 8, 8))
    return (x - IMAGENET_MEAN[None, :, None, None]) / IMAGENET_STD[None, :, None, None]


def test_brightness_is_the_mean_luminance_of_what_the_backbone_sees():
    batch = np.concatenate([_normalised((0.4, 0.4, 0.4)), _normalised((1.0, 0.0, 0.0)), _normalised((0, 0, 1.0))])
    np.testing.assert_allclose(appearance.brightness(batch), [0.4, 0.299, 0.114], atol=1e-6)


def test_looks_go_into_a_manifest_and_come_back():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(1200, 24)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    lit = np.linspace(0, 1, 1200)
    kept = json.loads(json.dumps(appearance.kept_looks(v, lit)))  # through JSON as a manifest
    back = appearance.decode(kept["vectors"])
    assert back.shape == (appearance.MAX_LOOKS, 24) and len(kept["brightness"]) == appearance.MAX_LOOKS
    pick = np.linspace(0, 1199, appearance.MAX_LOOKS).round().astype(int)  # evenly thinned, the pairs kept
    np.testing.assert_allclose(back, v[pick], atol=2e-3)
    np.testing.assert_allclose(kept["brightness"], lit[pick], atol=1e-6)
    assert appearance.kept_looks(None, []) == {} and appearance.decode(None) is None
    assert appearance.kept_looks(None, [0.5, 0.25]) == {"brightness": [0.5, 0.25]}  # an old export: no vectors
    for damaged in (
        {**kept["vectors"], "data": kept["vectors"]["data"][:-8]},
        {**kept["vectors"], "shape": [3, 3]},
        {**kept["vectors"], "dtype": "float64"},
        {"shape": "x"},
        {**kept["vectors"], "data": "not base64!"},
    ):
        with pytest.raises(ModelFileError, match="looks of the good images are damaged"):
            appearance.decode(damaged)


def test_training_keeps_the_looks_the_service_stores_of_each_photo(trained, synthetic, tmp_path):
    """The held-out images' looks in the manifest are what scoring the same images gives: the whole-image search
    vector the service stores and the prediction's brightness (PatchCore alone, torch and its ONNX export)."""
    from linewatch.vision.appearance import kept_reference_looks
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel

    det, path = trained
    _, held = det.split(load_dataset(synthetic).train)
    looks = kept_reference_looks(json.loads((path / "manifest.json").read_text()))
    assert looks.vectors.shape[0] == len(held) == looks.brightness.size
    preds = det.predict(held)
    np.testing.assert_allclose(looks.vectors, np.stack([p.embeddings.image for p in preds]), atol=2e-3)
    np.testing.assert_allclose(looks.brightness, [p.brightness for p in preds], atol=1e-5)
    assert all(0.0 < p.brightness < 1.0 for p in preds)
    raw = list(det.raw_looks(held))
    np.testing.assert_allclose([r[3] for r in raw], looks.brightness, atol=1e-5)
    copy = shutil.copytree(path, tmp_path / "exported")
    export_onnx(copy)
    onnx = OnnxModel(copy)
    by_onnx = onnx.predict(held)
    np.testing.assert_allclose(np.stack([p.embeddings.image for p in by_onnx]), looks.vectors, atol=3e-3)
    np.testing.assert_allclose([p.brightness for p in by_onnx], looks.brightness, atol=1e-5)
    np.testing.assert_allclose(np.stack([r[2] for r in onnx.raw_looks(held)]), looks.vectors, atol=3e-3)


def test_today_s_good_photos_replace_the_looks_and_a_dimmer_lamp_is_seen(trained, tmp_path):
    """``linewatch calibrate`` on today's photos keeps their looks; ``linewatch drift`` then names a lamp 25 % dimmer
    by the brightness, whatever the scores say."""
    from linewatch.vision import watch_drift
    from linewatch.vision.appearance import kept_reference_looks
    from linewatch.vision.recalibration import recalibrate
    from linewatch.vision.synthetic import make_dataset

    model = shutil.copytree(trained[1], tmp_path / "model")
    root = make_dataset(tmp_path / "parts", n_train=4, n_test_good=72, n_test_defect=2, seed=5)
    good = sorted((root / "test" / "good").iterdir())
    dim = tmp_path / "dim"
    dim.mkdir()
    for p in good[36:]:
        ImageEnhance.Brightness(Image.open(p)).enhance(0.75).save(dim / p.name)
    recalibrate(model, good[:36])
    looks = kept_reference_looks(json.loads((model / "manifest.json").read_text()))
    assert looks.vectors.shape[0] == 36 == looks.brightness.size
    same = watch_drift(model, good[36:])
    assert same.brightness_level == "ok" and same.look_level in ("ok", "watch"), same
    dimmer = watch_drift(model, sorted(dim.iterdir()))
    assert dimmer.brightness_level == "drift" and dimmer.level == "drift", dimmer
    assert dimmer.brightness_change == pytest.approx(-0.25, abs=0.05) and "darker" in dimmer.reason
    # the photos least like the good ones are named: six frames out of focus among thirty good ones
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in good[36:66]:
        shutil.copy(p, mixed / p.name)
    for p in good[66:72]:
        Image.open(p).filter(ImageFilter.GaussianBlur(3)).save(mixed / f"blurred-{p.name}")
    found = watch_drift(model, sorted(mixed.iterdir()))
    named = [Path(f["name"]).name for f in found.farthest]
    assert len(named) == 5 and all(n.startswith("blurred-") for n in named), found.farthest
    assert found.farthest[0]["distance"] >= found.farthest[-1]["distance"] > 0
    assert same.farthest is not None and not any("blurred" in str(f["name"]) for f in same.farthest)
    # a model whose looks are damaged says so, naming its folder
    m = json.loads((model / "manifest.json").read_text())
    m["calibration_scores"]["vectors"]["data"] = "AAAA"
    (model / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match="model.*looks of the good images are damaged"):
        watch_drift(model, good[36:])
