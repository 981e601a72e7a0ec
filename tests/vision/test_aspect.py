"""Images far from square: the model input follows the training images' aspect ratio instead of squashing them."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from linewatch.vision.datasets import load_dataset
from linewatch.vision.evaluation import evaluate
from linewatch.vision.export import export_onnx
from linewatch.vision.images import Preprocess, input_shape_for, median_aspect, spread
from linewatch.vision.padim import Padim
from linewatch.vision.patchcore import PatchCore
from linewatch.vision.runtime import OnnxModel, open_model
from linewatch.vision.saving import load, save


@pytest.fixture(scope="module")
def long_parts(synthetic, tmp_path_factory):
    """The synthetic category as 2:1 strips (512 x 256): two parts side by side, a defect in the left one only."""
    root = tmp_path_factory.mktemp("long") / "strips"

    def pair(a: Image.Image, b: Image.Image) -> Image.Image:
        out = Image.new(a.mode, (a.width + b.width, a.height))
        out.paste(a, (0, 0))
        out.paste(b, (a.width, 0))
        return out

    goods = sorted((synthetic / "train" / "good").iterdir())
    (root / "train" / "good").mkdir(parents=True)
    for i in range(0, len(goods) - 1, 2):
        pair(Image.open(goods[i]), Image.open(goods[i + 1])).save(root / "train" / "good" / f"{i:03d}.png")
    for i in range(1, len(goods) - 1, 2):  # more strips: the other pairing
        pair(Image.open(goods[i + 1]), Image.open(goods[i])).save(root / "train" / "good" / f"{i:03d}.png")
    test_good = sorted((synthetic / "test" / "good").iterdir())
    (root / "test" / "good").mkdir(parents=True)
    for i in range(len(test_good) - 1):
        pair(Image.open(test_good[i]), Image.open(test_good[i + 1])).save(root / "test" / "good" / f"{i:03d}.png")
    for kind_dir in sorted((synthetic / "test").iterdir()):
        if kind_dir.name == "good":
            continue
        images, masks = root / "test" / kind_dir.name, root / "ground_truth" / kind_dir.name
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for i, img in enumerate(sorted(kind_dir.iterdir())):
            mask = Image.open(synthetic / "ground_truth" / kind_dir.name / f"{img.stem}_mask.png")
            pair(Image.open(img), Image.open(test_good[i % len(test_good)])).save(images / img.name)
            pair(mask, Image.new(mask.mode, mask.size)).save(masks / f"{img.stem}_mask.png")
    return root


@pytest.fixture(scope="module")
def long_model(long_parts, tmp_path_factory):
    det = PatchCore(image_size=128).fit(load_dataset(long_parts).train)
    return det, save(det, tmp_path_factory.mktemp("models") / "long")


def test_input_shape_follows_the_aspect_ratio():
    assert input_shape_for(1.0, 256) == (256, 256)
    assert input_shape_for(1.2, 256) == (256, 256)  # near square: exactly the input it always had
    assert input_shape_for(0.85, 224) == (224, 224)
    h, w = input_shape_for(2.0, 256)
    assert (h, w) == (192, 352) and h % 32 == 0 and w % 32 == 0
    assert abs(h * w / 256**2 - 1) < 0.05 and abs(w / h - 2) < 0.2
    assert input_shape_for(0.4, 256) == input_shape_for(2.5, 256)[::-1]
    assert min(input_shape_for(40.0, 64)) == 64  # never thinner than two strides of 32
    assert input_shape_for(float("nan"), 256) == (256, 256)


def test_median_aspect_reads_headers_and_skips_unreadable(tmp_path):
    for i, size in enumerate([(200, 100), (300, 100), (210, 100)]):
        Image.new("RGB", size).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    files = sorted(tmp_path.iterdir())
    assert median_aspect(files) == pytest.approx(2.1)
    assert median_aspect([Image.new("RGB", (50, 100))]) == pytest.approx(0.5)
    assert median_aspect([tmp_path / "bad.png"]) is None
    assert spread(range(10), 3) == [0, 4, 9] and spread([1, 2], 5) == [1, 2]


def test_non_square_preprocess_round_trips_maps_boxes_and_masks():
    pre = Preprocess(128, shape=(96, 192))
    img = Image.new("RGB", (512, 256))
    assert pre(img).shape == (3, 96, 192)
    assert pre.input_hw == (96, 192) and pre.input_size == 192
    amap = np.zeros((96, 192), np.float32)
    amap[10:20, 100:120] = 1
    full = pre.map_to_original(amap, 512, 256)
    assert full.shape == (256, 512)
    ys, xs = np.nonzero(full > 0.5)
    assert 24 <= ys.min() <= 30 and 264 <= xs.min() <= 270
    assert pre.box_to_original(100, 10, 20, 10, 512, 256) == (266, 26, 54, 28)
    assert pre.area_scale(512, 256) == pytest.approx(512 * 256 / (96 * 192))
    mask = np.zeros((256, 512), bool)
    mask[:, 256:] = True
    m = pre.mask_to_input(mask)
    assert m.shape == (96, 192) and m[:, 96:].all() and not m[:, :96].any()
    with pytest.raises(ValueError):
        Preprocess(128, center_crop=96, shape=(96, 192))


def test_long_images_train_on_their_own_shape_and_find_defects(long_model, long_parts):
    det, path = long_model
    h, w = det.input_shape_
    assert w / h == pytest.approx(2.0, abs=0.2) and h % 32 == 0 and w % 32 == 0
    assert det.train_info_["input_shape"] == [h, w] and det.train_info_["median_aspect"] == pytest.approx(2.0)
    assert json.loads((path / "manifest.json").read_text())["input_shape"] == [h, w]
    ds = load_dataset(long_parts)
    m = evaluate(det, ds)
    assert m["image_auroc"] >= 0.9 and m["pixel_auroc"] >= 0.9
    bad = next(s for s in ds.test if s.is_anomalous)
    pred = det.predict([bad.path])[0]
    assert pred.anomaly_map.shape == (256, 512)
    assert pred.regions and all(r.x + r.width <= 512 and r.y + r.height <= 256 for r in pred.regions)
    # the defect is in the left part: so is the map's peak
    assert np.unravel_index(np.argmax(pred.anomaly_map), pred.anomaly_map.shape)[1] < 256


def test_long_model_saves_loads_and_exports_with_its_shape(long_model, long_parts, tmp_path):
    det, path = long_model
    images = [s.path for s in load_dataset(long_parts).test[::3]]
    again = load(path)
    assert again.input_shape_ == det.input_shape_
    want = det.predict(images)
    assert [p.score for p in again.predict(images)] == pytest.approx([p.score for p in want], rel=1e-5)
    model = tmp_path / "m"
    shutil.copytree(path, model)
    export_onnx(model)
    onnx = open_model(model)
    assert isinstance(onnx, OnnxModel)
    for a, b in zip(want, onnx.predict(images), strict=True):
        assert abs(a.score - b.score) <= 1e-3 * max(1.0, abs(a.score))
        assert a.anomaly_map.shape == b.anomaly_map.shape == (256, 512)
        assert np.abs(a.anomaly_map - b.anomaly_map).max() <= 1e-3 * max(1.0, float(np.abs(a.anomaly_map).max()))


def test_keep_aspect_off_and_padim_and_crops(long_parts):
    ds = load_dataset(long_parts)
    square = PatchCore(image_size=96, keep_aspect=False, self_check=False).fit(ds.train[:8])
    assert square.input_shape_ is None and square.preprocess.input_hw == (96, 96)
    assert square.train_info_["input_shape"] == [96, 96]
    cropped = PatchCore(image_size=96, center_crop=64, self_check=False).fit(ds.train[:8])
    assert cropped.input_shape_ is None and cropped.preprocess.input_hw == (64, 64)
    padim = Padim(image_size=96, self_check=False).fit(ds.train[:8])
    assert padim.input_shape_ == (64, 128)
    pred = padim.predict([ds.test[-1].path])[0]
    assert pred.anomaly_map.shape == (256, 512)


def test_a_manifest_with_a_bad_input_shape_is_a_clear_error(long_model, tmp_path):
    from linewatch.errors import ModelFileError

    _, path = long_model
    model = tmp_path / "m"
    shutil.copytree(path, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["input_shape"] = [0, 10]
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="input_shape"):
        load(model)
    for bad in ([96, "192"], [96], "96x192"):
        manifest["input_shape"] = bad
        (model / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelFileError, match="input_shape"):
            load(model)
        with pytest.raises(ModelFileError, match="input_shape"):
            open_model(model)  # the runtime reads the same manifest check
