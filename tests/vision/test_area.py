"""The inspection area: a mask of the part of every photo a model inspects. What changes outside it (a printed date
code, a label, the tray) neither raises the score nor appears on the map, the thresholds are set on good photos
scored that way, and the model keeps its own copy of the mask through save, load, export and the command line."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from linewatch.errors import LinewatchError, ModelFileError
from linewatch.vision.synthetic import good_part

SIZE = 128
CORNER = 40  # the stamp's side, in the photos' pixels: a varying code in the top-left corner


def stamped(rng: np.random.Generator, code: np.ndarray | None = None) -> Image.Image:
    """A good part with a printed code in its top-left corner that differs from part to part."""
    arr = np.asarray(good_part(rng, SIZE)).copy()
    if code is None:
        code = rng.integers(0, 2, (5, 5)).astype(bool)
    cell = (CORNER - 8) // 5
    for (i, j), on in np.ndenumerate(code):
        y, x = 4 + i * cell, 4 + j * cell
        arr[y : y + cell, x : x + cell] = 20 if on else 235
    return Image.fromarray(arr)


def area_mask(path: Path, size: tuple[int, int] = (SIZE, SIZE)) -> Path:
    """White everywhere but the code's corner and a margin (the features of a patch see a little beyond it), drawn at
    ``size``, the photos' or another."""
    w, h = size
    mask = np.full((h, w), 255, np.uint8)
    mask[: round((CORNER + 16) * h / SIZE), : round((CORNER + 16) * w / SIZE)] = 0
    Image.fromarray(mask).save(path)
    return path


@pytest.fixture(scope="module")
def stamped_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("stamped")
    rng = np.random.default_rng(3)
    (root / "good").mkdir()
    for i in range(24):
        stamped(rng).save(root / "good" / f"{i:03d}.png")
    test = root / "test"
    test.mkdir()
    for i in range(6):
        stamped(rng).save(test / f"good_{i}.png")
    # a code no training part has (all dark): only the corner changed
    stamped(rng, np.ones((5, 5), bool)).save(test / "new_code.png")
    # a defect inside the area: a dark bar across the part
    arr = np.asarray(stamped(rng)).copy()
    arr[80:88, 50:110] = 10
    Image.fromarray(arr).save(test / "defect.png")
    return root, area_mask(root / "area.png")


@pytest.fixture(scope="module")
def fitted(stamped_set):
    from linewatch.vision.patchcore import PatchCore

    root, mask = stamped_set
    images = sorted((root / "good").iterdir())
    plain = PatchCore(image_size=SIZE, self_check=False, auto="off").fit(images)
    masked = PatchCore(image_size=SIZE, self_check=False, auto="off", inspect_area=str(mask)).fit(images)
    return plain, masked


def test_what_changes_outside_the_area_is_not_scored(stamped_set, fitted):
    root, _ = stamped_set
    plain, masked = fitted
    new_code, defect = root / "test" / "new_code.png", root / "test" / "defect.png"
    p_code, p_defect = plain.predict([new_code, defect], embeddings=False)
    m_code, m_defect = masked.predict([new_code, defect], embeddings=False)
    # without the area the new code is the most anomalous thing in the photo, and its region is in the corner
    assert p_code.regions and p_code.regions[0].x < CORNER and p_code.regions[0].y < CORNER
    # with it, the corner scores nothing: the map is 0 there and no region is found in it
    amap = m_code.anomaly_map
    assert float(amap[: CORNER - 8, : CORNER - 8].max()) == 0.0
    assert not any(r.x + r.width <= CORNER and r.y + r.height <= CORNER for r in m_code.regions)
    assert m_code.score < p_code.score
    assert m_code.verdict == "good"
    # a defect inside the area is still found
    assert m_defect.verdict == "anomalous" and m_defect.regions
    assert m_defect.score > masked.calibration_.image_threshold


def test_thresholds_are_set_on_good_photos_scored_within_the_area(stamped_set, fitted):
    root, _ = stamped_set
    plain, masked = fitted
    held = masked.split(sorted((root / "good").iterdir()))[1]
    within = [s for s, *_ in masked.raw_scores(held)]
    whole = [s for s, *_ in plain.raw_scores(held)]
    # the held-out good photos' scores the thresholds came from are theirs within the area, not the whole photo's
    assert masked.calibration_scores_["image"] == pytest.approx(within, rel=1e-6)
    assert plain.calibration_scores_["image"] == pytest.approx(whole, rel=1e-6)
    assert within != pytest.approx(whole, rel=1e-3)


def test_the_model_keeps_its_own_copy_of_the_mask(stamped_set, fitted, tmp_path):
    from linewatch.vision.saving import load, save

    root, mask = stamped_set
    _, masked = fitted
    copy = tmp_path / "mine.png"
    copy.write_bytes(mask.read_bytes())
    out = save(masked, tmp_path / "model")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hyperparameters"]["inspect_area"] == "inspect_area.png"
    assert 0.75 < manifest["files"]["inspect_area"]["inspected"] < 0.85
    kept = np.asarray(Image.open(out / "inspect_area.png")) > 127
    assert np.array_equal(kept, masked.inspection_area())
    loaded = load(out)
    images = sorted((root / "test").iterdir())
    a = masked.predict(images, embeddings=False)
    b = loaded.predict(images, embeddings=False)
    assert [p.score for p in a] == pytest.approx([p.score for p in b], rel=1e-6)
    assert np.array_equal(a[0].anomaly_map, b[0].anomaly_map)
    # saved again from the loaded model, it still carries the area
    again = save(loaded, tmp_path / "again")
    assert (again / "inspect_area.png").read_bytes() == (out / "inspect_area.png").read_bytes()
    # a changed copy is refused, not silently used
    Image.fromarray(np.full(kept.shape, 255, np.uint8)).save(out / "inspect_area.png")
    with pytest.raises(ModelFileError, match="corrupt"):
        load(out)


def test_the_combined_default_masks_both_of_its_parts(stamped_set):
    from linewatch.vision.methodchoice import Combined

    root, mask = stamped_set
    images = sorted((root / "good").iterdir())
    det = Combined(image_size=SIZE, auto="off", inspect_area=str(mask)).fit(images)
    (pred,) = det.predict([root / "test" / "new_code.png"], embeddings=False)
    assert float(pred.anomaly_map[: CORNER - 8, : CORNER - 8].max()) == 0.0
    padim = det._parts[1]
    # PaDiM's own map (its share of the image score is its peak) is 0 in the corner too
    import torch

    from linewatch.vision.images import Preprocess, open_image

    pre = Preprocess(SIZE)
    x = torch.from_numpy(pre(open_image(root / "test" / "new_code.png"))[None])
    with torch.inference_mode():
        _, pmap = padim._score(x)
    assert float(pmap[0, : CORNER - 8, : CORNER - 8].max()) == 0.0
    assert det.train_info_["self_check"]["pixel_auroc"] is not None
    assert 0.75 < det.train_info_["inspect_area"]["inspected"] < 0.85


def test_the_export_scores_the_area_as_pytorch_does(stamped_set, fitted, tmp_path):
    pytest.importorskip("onnxruntime")
    from linewatch.vision.export import export_onnx
    from linewatch.vision.runtime import OnnxModel
    from linewatch.vision.saving import save

    root, _ = stamped_set
    _, masked = fitted
    out = save(masked, tmp_path / "model")
    export_onnx(out)
    images = sorted((root / "test").iterdir())
    onnx = OnnxModel(out).predict(images)
    torch_side = masked.predict(images)
    assert [p.score for p in onnx] == pytest.approx([p.score for p in torch_side], abs=1e-3)
    code = onnx[[Path(p.path).name for p in onnx].index("new_code.png")]
    assert float(code.anomaly_map[: CORNER - 8, : CORNER - 8].max()) == 0.0
    # the bundle carries the mask beside the graphs, and unzipped it scores the same
    import zipfile

    from linewatch.vision.bundle import write_bundle

    bundle = write_bundle(out, tmp_path / "model.zip")
    with zipfile.ZipFile(bundle) as z:
        assert "inspect_area.png" in z.namelist()
        z.extractall(tmp_path / "unzipped")
    again = OnnxModel(tmp_path / "unzipped").predict(images)
    assert [p.score for p in again] == pytest.approx([p.score for p in onnx], rel=1e-6)


def test_a_wrong_mask_is_refused_before_training(stamped_set, tmp_path):
    from linewatch.vision.patchcore import PatchCore

    root, _ = stamped_set
    images = sorted((root / "good").iterdir())

    def fit(path):
        return PatchCore(image_size=64, self_check=False, auto="off", inspect_area=str(path)).fit(images)

    with pytest.raises(LinewatchError, match="not found"):
        fit(tmp_path / "missing.png")
    black = tmp_path / "black.png"
    Image.new("L", (SIZE, SIZE), 0).save(black)
    with pytest.raises(LinewatchError, match="no pixel is inspected"):
        fit(black)
    wide = area_mask(tmp_path / "wide.png", (2 * SIZE, SIZE))
    with pytest.raises(LinewatchError, match="width / height 2.00"):
        fit(wide)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(LinewatchError, match="not a readable image"):
        fit(broken)
    # the same framing at another size is the same area
    large = area_mask(tmp_path / "large.png", (3 * SIZE, 3 * SIZE))
    assert fit(large).inspection_area().shape == (3 * SIZE, 3 * SIZE)


def test_painted_defects_land_in_the_area():
    from linewatch.vision.selfcheck import KINDS, paint

    img = good_part(np.random.default_rng(0), 200)
    area = np.zeros((100, 100), bool)
    area[60:95, 5:40] = True  # a small area off the centre: bottom left
    for seed in range(6):
        for kind in KINDS:
            _, mask = paint(np.random.default_rng(seed), img, kind, area)
            ys, xs = np.nonzero(mask)
            assert len(xs) and ys.min() >= 119 and xs.max() <= 81


def test_train_on_the_command_line_says_what_it_inspects(stamped_set, cli_here, tmp_path):
    root, mask = stamped_set
    out = tmp_path / "m"
    r = cli_here(
        "train", str(root / "good"), "-o", str(out), "--method", "patchcore", "--image-size", "64", "--auto", "off",
        "--inspect-area", str(mask), "-q",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "inspection area: 81% of each photo is inspected" in r.stderr
    assert (out / "inspect_area.png").is_file()
    r = cli_here(
        "train", str(root / "good"), "-o", str(tmp_path / "n"), "--image-size", "64",
        "--inspect-area", str(tmp_path / "nowhere.png"), "-q",
    )  # fmt: skip
    assert r.exit_code == 2 and "inspection area not found" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("method", ["combined", "auto"])
def test_a_model_keeps_the_mask_it_was_fitted_with_when_the_file_is_gone(stamped_set, tmp_path, method):
    """The service trains from a mask in a temporary folder, removed before the model is saved."""
    from linewatch.vision.saving import create_detector, load, save

    root, mask = stamped_set
    passing = tmp_path / "passing.png"
    passing.write_bytes(mask.read_bytes())
    det = create_detector(method, image_size=64, auto="off", self_check=False, inspect_area=str(passing))
    det.fit(sorted((root / "good").iterdir()))
    passing.unlink()
    out = save(det, tmp_path / "model")
    assert np.array_equal(np.asarray(Image.open(out / "inspect_area.png")) > 127, np.asarray(Image.open(mask)) > 127)
    assert load(out).inspection_area() is not None


def test_pictures_of_the_maps_grey_what_the_model_does_not_inspect(stamped_set, fitted, tmp_path, cli_here):
    from linewatch.services import heatmaps
    from linewatch.vision.images import open_image
    from linewatch.vision.overlay import overlay
    from linewatch.vision.saving import save

    root, _ = stamped_set
    _, masked = fitted
    photo = root / "test" / "new_code.png"
    (pred,) = masked.predict([photo])
    area = masked.inspection_area()

    def grey_outside(img):
        arr = np.asarray(img.convert("RGB")).astype(int)
        corner, part = arr[20:CORNER, 8:CORNER], arr[70:120, 70:120]  # below the verdict label
        return (corner[..., 0] == corner[..., 1]).all() and (corner[..., 1] == corner[..., 2]).all(), part

    plain = overlay(open_image(photo), pred, masked.calibration_)
    assert not grey_outside(plain)[0]  # the code's colours and the map's show through without the area
    dimmed = overlay(open_image(photo), pred, masked.calibration_, area=area)
    is_grey, part = grey_outside(dimmed)
    assert is_grey and np.array_equal(part, grey_outside(plain)[1])  # inside the area, as before
    # the service's picture of a stored map does the same
    stored = heatmaps.encode_map(pred, masked.calibration_)
    import io

    served = Image.open(io.BytesIO(heatmaps.blended(open_image(photo), stored, [], area=area)))
    assert grey_outside(served)[0]
    # linewatch predict --out, from the saved model (its own copy of the mask)
    out = save(masked, tmp_path / "model")
    r = cli_here("predict", str(out), str(photo), "--out", str(tmp_path / "maps"), "--engine", "torch")
    assert r.exit_code == 0, r.stderr
    (written,) = (tmp_path / "maps").glob("*.png")
    assert grey_outside(Image.open(written))[0]


def test_the_bank_learns_only_the_patches_inside_the_area(stamped_set):
    """A varying code would otherwise take bank entries from the part (the coreset keeps what is most unlike the
    rest, and a code is): every bank entry of a model with an area is a patch from inside it."""
    import torch

    from linewatch.vision.area import cell_weights
    from linewatch.vision.images import Preprocess, open_image
    from linewatch.vision.patchcore import PatchCore

    root, mask = stamped_set
    images = sorted((root / "good").iterdir())
    every = {"image_size": 64, "self_check": False, "auto": "off", "max_bank": 400, "holdout": 0.0}
    plain = PatchCore(**every).fit(images)
    masked = PatchCore(**every, inspect_area=str(mask)).fit(images)
    x = torch.from_numpy(np.stack([Preprocess(64)(open_image(p)) for p in images]))
    with torch.inference_mode():
        f = masked._features()(x)  # (B, D, 16, 16): every training patch
    rows = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    inside = torch.from_numpy(cell_weights(masked.area_input(), 16, 16).reshape(-1) > 0).repeat(len(images))

    def nearest_inside(bank):  # per bank entry: is its nearest training patch one inside the area?
        d = torch.cdist(bank, rows)
        return inside[d.argmin(1)], d.min(1).values

    assert bool(nearest_inside(masked.memory_bank_)[0].all())  # each entry is (nearest to) a patch inside the area
    assert not bool(nearest_inside(plain.memory_bank_)[0].all())  # without the area, the code's patches are in it


@pytest.mark.parametrize("method", ["patchcore", "combined"])
def test_nothing_outside_the_area_can_change_a_score(stamped_set, fitted, method):
    """The input outside the area is blanked before the backbone sees it: two photos that differ only there (another
    code) get the same score and map, whatever the deep layers' reach around each patch."""
    from linewatch.vision.saving import create_detector

    root, mask = stamped_set
    rng = np.random.default_rng(11)
    base = np.asarray(stamped(rng)).copy()
    other = base.copy()
    other[:CORNER, :CORNER] = np.asarray(stamped(rng, np.ones((5, 5), bool)))[:CORNER, :CORNER]
    photos = [Image.fromarray(base), Image.fromarray(other)]
    if method == "patchcore":
        plain, masked = fitted
    else:
        images = sorted((root / "good").iterdir())
        masked = create_detector(method, image_size=SIZE, auto="off", inspect_area=str(mask)).fit(images)
        plain = None
    a, b = masked.predict(photos, embeddings=False)
    assert a.score == pytest.approx(b.score, rel=1e-5)
    assert np.allclose(a.anomaly_map, b.anomaly_map, atol=1e-4)
    if plain is not None:  # without the area the other code changes the score
        pa, pb = plain.predict(photos, embeddings=False)
        assert pa.score != pytest.approx(pb.score, rel=1e-3)
