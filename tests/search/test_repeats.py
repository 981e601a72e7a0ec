"""A repeat is the same photo (re-encoded, a few pixels cropped), never another photo of the same part."""

import io

import imagehash
import pytest
from PIL import Image

from linewatch.search.repeats import Fingerprint, difference, fingerprint, same_photo


def _again(img: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_two_photos_of_the_same_part_are_not_a_repeat(part_shot):
    one, two = part_shot(4), part_shot(14)
    assert imagehash.phash(one) - imagehash.phash(two) <= 4  # what a perceptual hash alone called a repeat
    a, b = fingerprint(one), fingerprint(two)
    assert not same_photo(a, b) and not same_photo(b, a)


@pytest.mark.parametrize(
    "copy",
    [
        lambda im: _again(im, "JPEG", quality=90),
        lambda im: _again(_again(im, "JPEG", quality=90), "PNG"),
        lambda im: _again(im.crop((1, 1, im.width, im.height)), "PNG"),
        lambda im: _again(im.crop((2, 0, im.width, im.height - 2)), "JPEG", quality=90),
        lambda im: _again(im.crop((0, 0, im.width - 2, im.height - 1)), "PNG"),
    ],
    ids=["jpeg90", "png-from-jpeg", "crop1-top-left", "crop2-jpeg", "crop2-bottom-right"],
)
def test_the_same_photo_again_is_a_repeat_both_ways(copy, part_shot):
    img = part_shot(3)
    a, b = fingerprint(img), fingerprint(copy(img))
    assert same_photo(a, b) and same_photo(b, a)


def test_other_sizes_and_tiny_images(part_shot):
    img = part_shot(4)
    assert difference(fingerprint(img), fingerprint(img.crop((0, 0, img.width - 10, img.height)))) == float("inf")
    assert fingerprint(part_shot(5, size=40)) is None  # too small for the windows: only the same bytes repeat


def test_a_fingerprint_survives_storage(part_shot):
    fp = fingerprint(part_shot(6))
    back = Fingerprint.from_bytes(fp.to_bytes())
    assert (back.width, back.height) == (fp.width, fp.height) and difference(fp, back) == 0.0
