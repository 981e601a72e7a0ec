"""Ground-truth masks in the forms other datasets store them, and grey images deeper than 8 bits."""

import numpy as np
import pytest
from PIL import Image

from linewatch.vision.datasets import load_dataset
from linewatch.vision.images import full_scale, load_mask, mask_pixels, open_image


def _grey(path, arr):
    """``arr`` saved as a grey image of its own depth (uint16: 16-bit, float32: a float TIFF), then decoded."""
    Image.fromarray(arr).save(path)
    return np.asarray(open_image(path))[..., 0]


def test_a_camera_value_reads_as_the_same_grey_whatever_the_brightest_pixel(tmp_path):
    """A 12-bit camera's part with and without a glint: the part's pixels decode to the same greys (each image's
    own maximum stretched the one without the glint brighter)."""
    rng = np.random.default_rng(0)
    part = (rng.random((30, 40)) * 2000 + 500).astype(np.uint16)
    glint = part.copy()
    glint[0, 0] = 4000
    a, b = _grey(tmp_path / "a.png", part), _grey(tmp_path / "b.png", glint)
    assert (a[1:, 1:] == b[1:, 1:]).all()
    assert abs(int(a[5, 5]) - round(part[5, 5] / 4095 * 255)) <= 1  # read against Mono12's 4,095
    # a Mono16 image against 65,535, an image that fits in 8 bits as it is
    deep = np.full((8, 8), 30000, np.uint16)
    assert abs(int(_grey(tmp_path / "c.png", deep)[0, 0]) - round(30000 / 65535 * 255)) <= 1
    small = np.full((8, 8), 200, np.uint16)
    assert int(_grey(tmp_path / "d.png", small)[0, 0]) == 200


def test_float_images_in_zero_to_one_and_beyond():
    assert full_scale(np.array([[0.0, 0.5, 1.0]], np.float32), "F") == 1.0
    assert full_scale(np.array([[0.0, 3000.0]], np.float32), "F") == 4095.0
    assert full_scale(np.array([[np.nan, np.inf, 0.25]], np.float32), "F") == 1.0
    assert full_scale(np.zeros((2, 2), np.float32), "I") == 255.0


def test_a_float_tiff_with_nan_decodes_to_greys(tmp_path):
    arr = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    arr[0, 0] = np.nan
    got = _grey(tmp_path / "f.tiff", arr)
    assert got[0, 0] == 0 and got[-1, -1] == 255 and abs(int(got[4, 0]) - round(arr[4, 0] * 255)) <= 1


@pytest.mark.parametrize(
    "values,want",
    [
        ((0, 255), (False, True)),  # MVTec AD
        ((0, 1), (False, True)),  # 0/1 masks
        ((0, 2), (False, True)),  # one label per defect instance (VisA)
        ((3, 250), (False, True)),  # a JPEG's noise around black and white
    ],
)
def test_mask_pixels(values, want):
    assert tuple(mask_pixels(np.array([values], np.uint8))[0]) == want


def test_a_faint_grey_mask_is_not_read_as_labels():
    faint = np.arange(0, 101, dtype=np.uint8)[None, :]  # 101 greys, all below mid-grey: not a label mask
    assert not mask_pixels(faint).any()


def _category(root, mask_name, mask_values, fmt="PNG"):
    rng = np.random.default_rng(1)
    for split in ("train/good", "test/good", "test/crack"):
        (root / split).mkdir(parents=True)
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(root / split / "000.png")
    (root / "ground_truth" / "crack").mkdir(parents=True)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = mask_values
    Image.fromarray(mask).save(root / "ground_truth" / "crack" / mask_name, fmt)


@pytest.mark.parametrize(
    "name,fmt,value",
    [
        ("000_mask.png", "PNG", 255),
        ("000.png", "PNG", 1),
        ("000_GT.png", "PNG", 255),
        ("000.bmp", "BMP", 255),
        ("000_mask.tif", "TIFF", 1),
    ],
)
def test_masks_under_other_names_and_values_are_found(tmp_path, name, fmt, value):
    _category(tmp_path, name, value, fmt)
    ds = load_dataset(tmp_path)
    (bad,) = [s for s in ds.test if s.is_anomalous]
    assert bad.mask_path is not None and bad.mask_path.name == name
    assert load_mask(bad.mask_path, 16, 16).sum() == 16


def test_a_mask_of_another_image_is_not_taken(tmp_path):
    _category(tmp_path, "0001_mask.png", 255)
    (bad,) = [s for s in load_dataset(tmp_path).test if s.is_anomalous]
    assert bad.mask_path is None


def test_a_mask_of_another_shape_is_refused_one_at_another_scale_is_resized(tmp_path):
    from linewatch.errors import ImageError
    from linewatch.vision.images import load_mask

    full = np.zeros((60, 80), np.uint8)
    full[20:40, 40:60] = 255
    Image.fromarray(full[::2, ::2]).save(tmp_path / "half.png")  # the same shape at half the scale
    assert load_mask(tmp_path / "half.png", 80, 60).sum() == 20 * 20
    Image.fromarray(full[:30]).save(tmp_path / "cropped.png")  # 80 x 30: another image's, or cropped
    with pytest.raises(ImageError, match="the mask is 80x30, its image 80x60"):
        load_mask(tmp_path / "cropped.png", 80, 60)
