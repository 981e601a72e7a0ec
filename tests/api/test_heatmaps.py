import io

import numpy as np
import pytest
from PIL import Image

from linewatch.services import heatmaps
from linewatch.vision.scoring import Prediction
from linewatch.vision.thresholds import Calibration


def _pred(amap: np.ndarray) -> Prediction:
    return Prediction(path="x", score=1.0, normalized_score=0.7, verdict="anomalous", anomaly_map=amap, regions=[])


def _cal() -> Calibration:
    fields = Calibration.__dataclass_fields__
    values = {"pixel_threshold": 1.0, "pixel_scale": 0.1}
    return Calibration(**{k: values.get(k, 1.0) for k in fields})


def test_stored_map_is_small_greyscale_and_keeps_the_hot_spot():
    amap = np.zeros((900, 600), dtype=np.float32)
    amap[450:540, 300:390] = 2.0  # far above the threshold
    data = heatmaps.encode_map(_pred(amap), _cal())
    img = Image.open(io.BytesIO(data))
    assert img.mode == "L" and img.size == (171, 256)
    q = np.asarray(img)
    assert q[:50, :50].max() < 5  # raw 0: far below the threshold
    assert q[130:152, 87:109].min() > 250  # the hot spot, at the same place
    assert heatmaps.is_map(data)


def test_threshold_maps_to_the_middle():
    amap = np.full((64, 64), 1.0, dtype=np.float32)  # exactly the pixel threshold
    q = np.asarray(Image.open(io.BytesIO(heatmaps.encode_map(_pred(amap), _cal()))))
    assert abs(int(q.mean()) - 128) <= 1


def test_colored_and_blended_views():
    amap = np.zeros((100, 200), dtype=np.float32)
    amap[40:60, 150:170] = 3.0
    data = heatmaps.encode_map(_pred(amap), _cal())
    col = Image.open(io.BytesIO(heatmaps.colored(data)))
    assert col.mode == "RGB" and col.size == (200, 100)
    hot, cold = np.asarray(col)[50, 160], np.asarray(col)[10, 10]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red where anomalous, blue where normal
    image = Image.new("RGB", (200, 100), (128, 128, 128))
    region = {"x": 150, "y": 40, "width": 20, "height": 20}
    out = Image.open(io.BytesIO(heatmaps.blended(image, data, [region])))
    assert out.size == (200, 100)
    assert tuple(np.asarray(out)[40, 155]) == (255, 255, 255)  # the box outline


def test_old_overlays_are_served_unchanged():
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buf, format="PNG")
    old = buf.getvalue()
    assert not heatmaps.is_map(old)
    assert heatmaps.colored(old) == old
    assert heatmaps.blended(Image.new("RGB", (10, 10)), old, []) == old


def test_stored_map_comes_from_the_model_map_without_the_full_size_one():
    from linewatch.vision.images import Preprocess
    from linewatch.vision.scoring import postprocess

    input_map = np.zeros((64, 64), dtype=np.float32)
    input_map[20:40, 30:50] = 2.0
    pred = postprocess(3.0, input_map, _cal(), Preprocess(64), 1800, 1200)
    data = heatmaps.encode_map(pred, _cal())
    assert "anomaly_map" not in vars(pred)  # the 1800x1200 map was never made
    fast = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32)
    assert fast.shape == (171, 256)
    slow = np.asarray(Image.open(io.BytesIO(heatmaps.encode_map(_pred(pred.anomaly_map), _cal()))), dtype=np.float32)
    assert slow.shape == fast.shape
    assert np.abs(fast - slow).mean() < 2.0 and (fast > 250).sum() == pytest.approx((slow > 250).sum(), rel=0.1)
