import io

import numpy as np
import pytest
from PIL import Image

from linewatch.errors import ImageError
from linewatch.vision import images
from linewatch.vision.images import IMAGENET_MEAN, IMAGENET_STD, Preprocess, open_image


@pytest.mark.parametrize(
    "mode,suffix",
    [("RGB", ".png"), ("L", ".jpg"), ("RGBA", ".png"), ("RGB", ".bmp"), ("L", ".tiff"), ("I;16", ".png")],
)
def test_formats_and_modes_become_rgb(tmp_path, mode, suffix):
    arr = (np.random.default_rng(0).random((40, 60)) * (65535 if mode == "I;16" else 255)).astype(
        np.uint16 if mode == "I;16" else np.uint8
    )
    img = Image.fromarray(arr) if mode in ("L", "I;16") else Image.fromarray(arr).convert(mode)
    path = tmp_path / f"x{suffix}"
    img.save(path)
    out = open_image(path)
    assert out.mode == "RGB" and out.size == (60, 40)
    assert np.asarray(out).std() > 10  # 16-bit scaled to 8 bit, not clipped to white


def test_unreadable_inputs_give_clear_errors(tmp_path, monkeypatch):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50)
    with pytest.raises(ImageError, match="not a readable image"):
        open_image(corrupt)
    truncated = tmp_path / "cut.png"
    Image.new("RGB", (200, 200), (10, 20, 30)).save(tmp_path / "ok.png")
    truncated.write_bytes((tmp_path / "ok.png").read_bytes()[:100])
    with pytest.raises(ImageError):
        open_image(truncated)
    with pytest.raises(ImageError, match="not found"):
        open_image(tmp_path / "nope.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ImageError, match="over the limit"):
        open_image(tmp_path / "ok.png")


def test_maps_return_at_the_original_size_with_center_crop():
    pre = Preprocess(64, center_crop=48)
    x = pre(Image.new("RGB", (300, 200)))
    assert x.shape == (3, 48, 48) and x.dtype == np.float32
    amap = np.ones((48, 48), dtype=np.float32)
    full = pre.map_to_original(amap, 300, 200)
    assert full.shape == (200, 300)
    assert full[100, 150] == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "ICO", "TGA", "PPM"])
def test_only_listed_formats_are_decoded(fmt):
    from PIL import Image

    from linewatch.errors import ImageError
    from linewatch.vision.images import open_image_bytes

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, format=fmt)
    with pytest.raises(ImageError, match="not a PNG, JPEG, BMP or TIFF image"):
        open_image_bytes(buf.getvalue(), f"part.{fmt.lower()}")


def test_eps_is_never_handed_to_ghostscript(tmp_path):
    from linewatch.errors import ImageError
    from linewatch.vision.images import open_image

    eps = tmp_path / "part.png"  # the name lies; the content is PostScript
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ImageError, match="not a PNG, JPEG, BMP or TIFF image"):
        open_image(eps)


@pytest.mark.parametrize(("size", "why"), [((1, 30_000), "side over"), ((100, 6_000), "over 50:1")])
def test_strips_are_refused_before_decoding(size, why):
    from PIL import Image

    from linewatch.errors import ImageTooLarge
    from linewatch.vision.images import open_image_bytes

    buf = io.BytesIO()
    Image.new("1", size).save(buf, format="PNG")
    with pytest.raises(ImageTooLarge, match=why):
        open_image_bytes(buf.getvalue(), "strip.png")


@pytest.mark.parametrize(
    ("mode", "options", "fast"),
    [
        ("RGB", {}, True),
        ("RGB", {"interlace": 1}, True),
        ("L", {}, True),
        ("RGBA", {}, False),
        ("P", {}, False),
        ("L", {"transparency": 5}, False),
        ("I;16", {}, False),
    ],
)
def test_png_fast_path_gives_pillows_pixels(tmp_path, monkeypatch, mode, options, fast):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray((rng.random((37, 53, 3)) * 255).astype(np.uint8))
    img = Image.fromarray(np.asarray(rgb)[..., 0].astype(np.uint16) * 200) if mode == "I;16" else rgb.convert(mode)
    path = tmp_path / "x.png"
    img.save(path, "PNG", **options)
    with Image.open(path) as opened:
        assert (images._png_fast(opened, path) is not None) == (fast and images._png_decode is not None)
    got = np.asarray(images.open_image(path))
    got_bytes = np.asarray(images.open_image_bytes(path.read_bytes()))
    monkeypatch.setattr(images, "_png_decode", None)
    want = np.asarray(images.open_image(path))
    assert got.shape == want.shape == (37, 53, 3)
    assert (got == want).all() and (got_bytes == want).all()


def test_a_png_the_fast_decoder_refuses_is_left_to_pillow(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    want = (rng.random((21, 34, 3)) * 255).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(want).save(path, "PNG")
    calls = []

    def refuses(data, height, width, channels):
        calls.append((height, width, channels))
        raise ValueError("not for me")

    monkeypatch.setattr(images, "_png_decode", refuses)
    assert (np.asarray(images.open_image(path)) == want).all()
    assert (np.asarray(images.open_image_bytes(path.read_bytes())) == want).all()
    assert calls == [(21, 34, 3), (21, 34, 3)]


def test_the_fastest_installed_png_decoder_is_used():
    try:
        import kornia_rs.io  # noqa: F401
    except ImportError:
        pytest.skip("kornia-rs is not installed: imagecodecs decodes PNGs")
    assert images._png_decode.__name__ == "decode"  # kornia-rs, not the imagecodecs fallback
    grey = np.arange(12 * 7, dtype=np.uint8).reshape(12, 7)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    got = images._png_decode(buf.getvalue(), 12, 7, 1)
    assert got.shape == (12, 7) and (got == grey).all()


def test_png_fast_path_reports_a_truncated_file(tmp_path):
    path = tmp_path / "cut.png"
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        open_image(path)


@pytest.mark.parametrize("pre", [Preprocess(64), Preprocess(64, center_crop=48), Preprocess(shape=(32, 96))])
def test_normalisation_by_table_is_the_arithmetic_exactly(pre):
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8))
    rh, rw = pre.resize_hw
    arr = np.asarray(img.resize((rw, rh), Image.BILINEAR), dtype=np.float32) / 255.0
    if pre.center_crop:
        top = (rh - pre.center_crop) // 2
        arr = arr[top : top + pre.center_crop, top : top + pre.center_crop]
    want = ((arr - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    got = pre(img)
    assert got.dtype == np.float32 and got.flags.c_contiguous and np.array_equal(got, want)


def _stored_as_sensor_read(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores for a photo that ``orientation`` turns upright (the inverse of the turn)."""
    from PIL import ImageOps

    inverse = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 5: Image.Transpose.TRANSPOSE}
    inverse |= {k: images._TRANSPOSE[k] for k in (2, 3, 4, 7)}  # these undo themselves
    stored = upright.transpose(inverse[orientation])
    tagged = stored.copy()
    tagged.getexif()[0x0112] = orientation
    check = tagged.copy()
    check.info["exif"] = tagged.getexif().tobytes()
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(check)), np.asarray(upright))  # the inverse is right
    return stored


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path, orientation, fmt):
    # a phone writes the sensor's pixels and an orientation tag; viewers and browsers show the photo upright, and
    # the maps, regions and size linewatch reports are drawn over what they show
    rng = np.random.default_rng(orientation)
    upright = Image.fromarray((rng.random((48, 80, 3)) * 255).astype(np.uint8))
    upright.paste((255, 0, 0), (0, 0, 16, 12))  # a red corner: top left when upright
    stored = upright if orientation == 1 else _stored_as_sensor_read(upright, orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / ("x.png" if fmt == "PNG" else "x.jpg")
    stored.save(path, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    for got in (open_image(path), images.open_image_bytes(path.read_bytes())):
        assert got.size == (80, 48) and got.info["original_size"] == (80, 48)
        arr = np.asarray(got).astype(int)
        if fmt == "PNG":
            assert (arr == np.asarray(upright)).all()
        assert arr[:10, :14, 0].mean() > 200 and arr[:10, :14, 1:].mean() < 60  # red is top left
    assert images.median_aspect([path]) == pytest.approx(80 / 48)


def test_a_jpeg_decoded_at_a_reduced_scale_is_turned_and_keeps_its_size(tmp_path):
    upright = Image.fromarray(np.zeros((600, 800, 3), np.uint8))
    upright.paste((255, 0, 0), (0, 0, 200, 150))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", exif=exif, quality=95)
    got = open_image(path, draft_size=200)
    assert got.info["original_size"] == (800, 600)  # the full size, upright
    assert got.width > got.height and got.width < 800  # decoded at a reduced scale, then turned
    arr = np.asarray(got).astype(int)
    assert arr[: got.height // 5, : got.width // 5, 0].mean() > 200


def test_an_invalid_or_damaged_orientation_leaves_the_pixels_as_stored(tmp_path):
    want = (np.random.default_rng(4).random((20, 30, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 9  # not an orientation
    path = tmp_path / "x.png"
    Image.fromarray(want).save(path, "PNG", exif=exif)
    assert (np.asarray(open_image(path)) == want).all()
