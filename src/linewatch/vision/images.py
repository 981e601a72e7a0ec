"""Reading images safely and turning them into model input. Needs only numpy and Pillow."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from linewatch.errors import ImageError, ImageTooLarge

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MAX_PIXELS = 64_000_000  # larger images are refused (decompression bombs)
MAX_SIDE = 20_000  # a longer side is refused: a 1 x 40M-pixel strip costs like a huge image in every step
MAX_ASPECT = 50  # long side / short side: no part photo is a thread
#: the formats decoded; Pillow is never asked to guess among the others (EPS would run Ghostscript, ...)
FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def formats_text(formats: tuple[str, ...] = FORMATS) -> str:
    return ", ".join(formats[:-1]) + f" or {formats[-1]}" if len(formats) > 1 else formats[0]


def _decode(fp, name: str, max_pixels: int, draft_size: int | None, formats: tuple[str, ...] = FORMATS) -> Image.Image:
    """Decode an allowed format with size checks before any pixel is read; every failure is an ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(fp, formats=formats)
            except UnidentifiedImageError:
                raise ImageError(f"{name}: not a readable image (not a {formats_text(formats)} image)") from None
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLarge(f"{name}: {w}x{h} is over the limit of {max_pixels:,} pixels")
            if max(w, h) > MAX_SIDE:
                raise ImageTooLarge(f"{name}: {w}x{h} has a side over {MAX_SIDE:,} pixels")
            if min(w, h) < 1 or max(w, h) > MAX_ASPECT * min(w, h):
                raise ImageTooLarge(f"{name}: {w}x{h} is over {MAX_ASPECT}:1 (not a part photo)")
            original = img.size
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError):
        raise ImageTooLarge(f"{name}: image is too large to decode safely") from None
    except Exception as e:  # Pillow raises more than OSError on crafted files (struct.error, IndexError...)
        raise ImageError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None
    img.info["original_size"] = original
    return img


def open_image(source: str | Path | Image.Image, draft_size: int | None = None) -> Image.Image:
    """An RGB Pillow image from a path or an image; a clear ImageError for anything unreadable.

    With ``draft_size``, a JPEG is decoded directly at a reduced scale no smaller than that size
    (much faster for camera-sized photos); ``original_size`` in the result's ``info`` keeps the file's size.
    """
    if isinstance(source, Image.Image):
        img, name = source, "image"
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ImageError(f"image not found: {path}")
        if not path.is_file():
            raise ImageError(f"not a file: {path}")
        img = _decode(path, name, MAX_PIXELS, draft_size)
    return _to_rgb(img, name)


def open_image_bytes(data: bytes, name: str = "upload", max_pixels: int | None = None) -> Image.Image:
    """An RGB image from encoded bytes (an upload), with the same checks as a file."""
    return _to_rgb(_decode(io.BytesIO(data), name, max_pixels or MAX_PIXELS, None), name)


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    original = img.info.get("original_size", img.size)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max()) or 1.0
        img = Image.fromarray((arr / hi * 255.0).clip(0, 255).astype(np.uint8))
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except (OSError, ValueError) as e:
            raise ImageError(f"{name}: cannot convert {img.mode} image to RGB: {e}") from None
    img.info["original_size"] = original
    return img


@dataclass(frozen=True)
class Preprocess:
    """Resize (and optionally center-crop) to the model's input, then ImageNet normalisation."""

    image_size: int = 256
    center_crop: int | None = None

    @property
    def input_size(self) -> int:
        return self.center_crop or self.image_size

    def __call__(self, img: Image.Image) -> np.ndarray:
        """A float32 CHW array for one RGB image."""
        s = self.image_size
        resized = img.resize((s, s), Image.BILINEAR)
        arr = np.asarray(resized, dtype=np.float32) / 255.0
        if self.center_crop:
            c = self.center_crop
            top = (s - c) // 2
            arr = arr[top : top + c, top : top + c]
        arr = (arr - IMAGENET_MEAN) / IMAGENET_STD
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def map_to_original(self, amap: np.ndarray, width: int, height: int) -> np.ndarray:
        """An anomaly map at model input resolution, placed back on the original image (bilinear)."""
        m = amap.astype(np.float32)
        if self.center_crop:
            s, c = self.image_size, self.center_crop
            top = (s - c) // 2
            full = np.full((s, s), float(m.min()), dtype=np.float32)
            full[top : top + c, top : top + c] = m
            m = full
        if m.shape == (height, width):
            return m
        return np.asarray(Image.fromarray(m).resize((width, height), Image.BILINEAR))

    def box_to_original(self, x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
        """A box in model-input pixels as a box in original-image pixels."""
        off = (self.image_size - self.center_crop) // 2 if self.center_crop else 0
        sx, sy = width / self.image_size, height / self.image_size
        x0, y0 = int(np.floor((x + off) * sx)), int(np.floor((y + off) * sy))
        x1 = min(width, int(np.ceil((x + off + w) * sx)))
        y1 = min(height, int(np.ceil((y + off + h) * sy)))
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)

    def mask_to_input(self, mask: np.ndarray) -> np.ndarray:
        """A boolean ground-truth mask resized (nearest) to the model's input resolution."""
        s = self.image_size
        m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((s, s), Image.NEAREST)) > 127
        if self.center_crop:
            c = self.center_crop
            top = (s - c) // 2
            m = m[top : top + c, top : top + c]
        return m


def load_mask(path: Path | None, width: int, height: int) -> np.ndarray:
    """A boolean defect mask at the image's size; all False when there is no mask file."""
    if path is None:
        return np.zeros((height, width), dtype=bool)
    m = open_image(path)
    arr = np.asarray(m.convert("L"))
    if arr.shape != (height, width):
        arr = np.asarray(m.convert("L").resize((width, height), Image.NEAREST))
    return arr > 127
