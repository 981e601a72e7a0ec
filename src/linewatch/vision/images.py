"""Reading images safely and turning them into model input. Needs only numpy and Pillow."""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from linewatch.errors import ImageError, ImageTooLarge


def _png_decoder():
    """The fastest PNG decoder installed for 8-bit RGB and grey files, as ``decode(data, height, width, channels)``,
    or None. kornia-rs (the Rust ``png`` crate) decodes a 900 x 900 RGB PNG in about 60% of imagecodecs' time but
    holds the GIL; imagecodecs (libpng) releases it. Both give Pillow's pixels: PNG is lossless and none applies
    gamma. Pillow stays the fallback and does every other case."""
    try:
        from kornia_rs.io import decode_image_png_u8
    except ImportError:  # pragma: no cover - a platform without its wheel
        pass
    else:

        def decode(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
            arr = np.asarray(decode_image_png_u8(data, (height, width), "rgb" if channels == 3 else "mono"))
            return arr[..., 0] if channels == 1 and arr.ndim == 3 else arr

        return decode
    try:
        from imagecodecs import png_decode
    except ImportError:  # pragma: no cover - a platform without its wheel
        return None
    return lambda data, height, width, channels: png_decode(data)


_png_decode = _png_decoder()

MAX_PIXELS = 64_000_000  # larger images are refused (decompression bombs)
MAX_SIDE = 20_000  # a longer side is refused: a 1 x 40M-pixel strip costs like a huge image in every step
MAX_ASPECT = 50  # long side / short side: no part photo is a thread
#: the formats decoded by default; Pillow is never asked to guess among the others (EPS would run Ghostscript, ...)
FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
#: what the list may name (``LINEWATCH_IMAGE_FORMATS``): Pillow's own decoders of common raster formats, none of
#: which hands the file to another program
SAFE_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")
_SUFFIXES = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg"),
    "BMP": (".bmp",),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
    "GIF": (".gif",),
}
_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
_configured: tuple[str, ...] | None = None


def parse_formats(value: object) -> tuple[str, ...]:
    """A list of formats from a setting ("PNG,JPEG", a JSON list, or a sequence): upper case, known, in order."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            value = json.loads(text)
        else:
            value = [v for v in text.replace(";", ",").split(",")]
    names = [_ALIASES.get(str(v).strip().upper(), str(v).strip().upper()) for v in value]  # type: ignore[union-attr]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in SAFE_FORMATS]
    if unknown:
        raise ValueError(f"image format {unknown[0]!r} is not one that can be allowed: {', '.join(SAFE_FORMATS)}")
    if not names:
        raise ValueError(f"name at least one image format of {', '.join(SAFE_FORMATS)}")
    return tuple(dict.fromkeys(names))


def set_formats(formats: tuple[str, ...] | None) -> None:
    """Decode ``formats`` from now on in this process (None: back to ``LINEWATCH_IMAGE_FORMATS`` or the default);
    the service sets its ``image_formats`` setting here."""
    global _configured
    _configured = parse_formats(formats) if formats is not None else None


def allowed_formats() -> tuple[str, ...]:
    """The formats decoded: those set by ``set_formats``, else ``LINEWATCH_IMAGE_FORMATS``, else ``FORMATS``."""
    if _configured is not None:
        return _configured
    env = os.environ.get("LINEWATCH_IMAGE_FORMATS", "").strip()
    return parse_formats(env) if env else FORMATS


def image_suffixes() -> set[str]:
    """File name suffixes of the allowed formats (what a folder of images is listed by)."""
    return {suffix for f in allowed_formats() for suffix in _SUFFIXES[f]}


def __getattr__(name: str):
    if name == "IMAGE_SUFFIXES":  # the older constant: the suffixes of the formats allowed now
        return image_suffixes()
    raise AttributeError(name)


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# each channel's normalised value of each 8-bit level, computed exactly as the arrays would be (float32 throughout)
_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)
_NORMALISE = (_LEVELS[None, :] - IMAGENET_MEAN[:, None]) / IMAGENET_STD[:, None]


#: folders that file systems and archivers fill with copies nobody put there: a Synology NAS's thumbnails, the
#: resource forks macOS adds to a zip
SYSTEM_FOLDERS = frozenset({"@eaDir", "__MACOSX"})


def is_hidden(parts: tuple[str, ...] | list[str]) -> bool:
    """Whether a path (its parts below the folder searched) is hidden: a name that starts with a dot (``.DS_Store``,
    ``._photo.png``, a ``.thumbnails/`` folder) or a system folder's (``SYSTEM_FOLDERS``)."""
    return any(part.startswith(".") or part in SYSTEM_FOLDERS for part in parts)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in image_suffixes() and not is_hidden((path.name,))


def formats_text(formats: tuple[str, ...] | None = None) -> str:
    formats = formats or allowed_formats()
    return ", ".join(formats[:-1]) + f" or {formats[-1]}" if len(formats) > 1 else formats[0]


def check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    """ImageTooLarge for an image over the pixel limit, with a side over MAX_SIDE or over MAX_ASPECT:1."""
    w, h = size
    if w * h > max_pixels:
        raise ImageTooLarge(f"{name}: {w}x{h} is over the limit of {max_pixels:,} pixels")
    if max(w, h) > MAX_SIDE:
        raise ImageTooLarge(f"{name}: {w}x{h} has a side over {MAX_SIDE:,} pixels")
    if min(w, h) < 1 or max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageTooLarge(f"{name}: {w}x{h} is over {MAX_ASPECT}:1 (not a part photo)")


def _png_fast(img: Image.Image, fp) -> Image.Image | None:
    """The pixels of an 8-bit RGB or grey PNG through ``_png_decode`` (the same values as Pillow's decoder), or
    None for anything else (other bit depths, palettes, alpha) and for a file that decoder refuses."""
    if _png_decode is None or img.format != "PNG" or img.mode not in ("RGB", "L"):
        return None
    tile = getattr(img, "tile", None)
    if not tile or len(tile) != 1 or tile[0][3] not in ("RGB", "L") or "transparency" in img.info:
        return None
    if isinstance(fp, io.BytesIO):
        data = fp.getvalue()
    elif isinstance(fp, (str, Path)):
        data = Path(fp).read_bytes()
    else:
        return None
    want = (img.height, img.width, 3) if img.mode == "RGB" else (img.height, img.width)
    try:
        arr = _png_decode(data, img.height, img.width, 3 if img.mode == "RGB" else 1)
    except Exception:  # noqa: BLE001 - the fast decoder refuses the file: Pillow's decoder decides, and says why
        return None
    if arr.shape != want or arr.dtype != np.uint8:  # never for a file Pillow read the same header of
        raise ImageError(f"PNG decoder disagrees on the image's layout ({arr.shape} {arr.dtype})")
    return Image.fromarray(np.ascontiguousarray(arr), img.mode)


#: how to turn each EXIF orientation (2-8) upright, as image viewers and browsers show the photo
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS = (5, 6, 7, 8)  # the orientations that swap width and height


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image, 1 when it has none or an invalid one; nothing is decoded. A
    phone or camera that writes one stores the pixels as the sensor read them and leaves turning them to the viewer.
    A PNG's is taken only from an eXIf chunk before its pixels (for one after them Pillow would decode the whole
    image just to look)."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: the pixels as stored
        return 1
    return value if value in _TRANSPOSE else 1


def _decode(
    fp, name: str, max_pixels: int, draft_size: int | None, formats: tuple[str, ...] | None = None
) -> Image.Image:
    """Decode an allowed format with size checks before any pixel is read; every failure is an ImageError. An
    image with an EXIF orientation is turned upright, as a viewer or a browser shows it, so maps, regions and the
    size reported (``original_size``) match what a person sees of the same file."""
    formats = formats or allowed_formats()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(fp, formats=formats)
            except UnidentifiedImageError:
                raise ImageError(f"{name}: not a readable image (not a {formats_text(formats)} image)") from None
            check_size(img.size, name, max_pixels)
            orientation = _orientation(img)
            original = img.size[::-1] if orientation in _SWAPS else img.size
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            fast = _png_fast(img, fp)
            if fast is not None:
                img.close()
                img = fast
            else:
                img.load()
            if orientation != 1:
                img = img.transpose(_TRANSPOSE[orientation])
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


def image_size(data: bytes, name: str = "upload", max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from an upload's header, nothing decoded, after the same checks as decoding (format, pixels,
    side, aspect): for checking a request's pixel budget before any image of it is decoded."""
    formats = allowed_formats()
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:
            check_size(img.size, name, max_pixels or MAX_PIXELS)
            return img.size
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a readable image (not a {formats_text(formats)} image)") from None
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"{name}: image is too large to decode safely") from None
    except Exception as e:
        raise ImageError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None


def open_image_bytes(data: bytes, name: str = "upload", max_pixels: int | None = None) -> Image.Image:
    """An RGB image from encoded bytes (an upload), with the same checks as a file."""
    return _to_rgb(_decode(io.BytesIO(data), name, max_pixels or MAX_PIXELS, None), name)


#: the pixel formats of machine-vision cameras (Mono8 to Mono16) and 24/32-bit integers: a deeper grey image is read
#: against the smallest of these ranges that holds its brightest value (``full_scale``)
BIT_DEPTHS = (8, 10, 12, 14, 16, 24, 32)


def full_scale(arr: np.ndarray, mode: str) -> float:
    """The value a deeper-than-8-bit grey image's white stands for: 1.0 for a float image within [0, 1], else
    2^bits - 1 for the smallest camera bit depth (``BIT_DEPTHS``) that holds the image's brightest value.

    The same camera's value means the same grey in every image, whatever else the image holds: a 12-bit camera's
    images are read against 4,095 whether their brightest pixel is a glint at 4,000 or a dull 2,500. (Each image's own
    maximum, the rule until 2026-12, stretched a part brighter when its glint was missing and darker when a bright
    defect appeared.) Only an image whose values all fit the next smaller depth (below a quarter of a 10- to 16-bit
    camera's range) reads as that depth."""
    finite = arr[np.isfinite(arr)]
    hi = float(finite.max()) if finite.size else 0.0
    if mode == "F" and hi <= 1.0:
        return 1.0
    for bits in BIT_DEPTHS:
        if hi <= 2.0**bits - 1:
            return 2.0**bits - 1
    return hi


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    original = img.info.get("original_size", img.size)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scaled = np.nan_to_num(arr / full_scale(arr, img.mode) * 255.0, nan=0.0, posinf=255.0, neginf=0.0)
        img = Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8))
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except (OSError, ValueError) as e:
            raise ImageError(f"{name}: cannot convert {img.mode} image to RGB: {e}") from None
    img.info["original_size"] = original
    return img


#: training images whose median aspect ratio (width / height) lies within these bounds get a square input
SQUARE_ASPECTS = (0.8, 1.25)


def input_shape_for(aspect: float, image_size: int, multiple: int = 32) -> tuple[int, int]:
    """(height, width) of a model input of about ``image_size`` x ``image_size`` pixels with the given aspect ratio
    (width / height), each side a multiple of ``multiple`` (the backbone's strides divide it); square for aspects
    within ``SQUARE_ASPECTS``, so near-square parts keep exactly the input they always had."""
    lo, hi = SQUARE_ASPECTS
    if not aspect > 0 or lo <= aspect <= hi:
        return image_size, image_size
    root = float(np.sqrt(aspect))

    def side(x: float) -> int:
        return int(max(2 * multiple, round(x / multiple) * multiple))

    return side(image_size / root), side(image_size * root)


def spread(items, limit: int) -> list:
    """At most ``limit`` of ``items``, spread evenly over them (first and last kept)."""
    items = list(items)
    if len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def median_aspect(sources, limit: int = 500) -> float | None:
    """The median width / height of up to ``limit`` images (evenly spread), read from their headers (nothing
    decoded); None when none can be read. Unreadable files are left to the loader, which reports them."""
    ratios = []
    for src in spread(sources, limit):
        try:
            if isinstance(src, Image.Image):
                w, h = src.size
            else:
                with Image.open(src, formats=allowed_formats()) as img:
                    w, h = img.size[::-1] if _orientation(img) in _SWAPS else img.size
        except Exception:  # noqa: BLE001 - any unreadable header: the loader reports the file
            continue
        if w > 0 and h > 0:
            ratios.append(w / h)
    return float(np.median(ratios)) if ratios else None


@dataclass(frozen=True)
class Preprocess:
    """Resize to the model's input (``shape``: height x width, else ``image_size`` square; or square then
    center-cropped; in two steps for large images with ``reducing_gap``), then ImageNet normalisation."""

    image_size: int = 256
    center_crop: int | None = None
    shape: tuple[int, int] | None = None  # (height, width) of a non-square input (never with center_crop)
    # Pillow's ``reducing_gap``: an image more than this many times the input size is first shrunk by a whole
    # factor (a box filter, ``Image.reduce``), then resized the rest of the way; None: one antialiased resize
    reducing_gap: float | None = None

    def __post_init__(self):
        if self.shape is not None:
            object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))
            if self.center_crop:
                raise ValueError("a center crop needs a square input")

    @property
    def input_size(self) -> int:
        """The side of a square input (the longer side of a non-square one)."""
        return max(self.input_hw)

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        if self.shape is not None:
            return self.shape
        s = self.center_crop or self.image_size
        return s, s

    @property
    def resize_hw(self) -> tuple[int, int]:
        """(height, width) images are resized to, before any crop."""
        return self.shape if self.shape is not None else (self.image_size, self.image_size)

    def __call__(self, img: Image.Image) -> np.ndarray:
        """A float32 CHW array for one RGB image."""
        rh, rw = self.resize_hw
        arr = np.asarray(img.resize((rw, rh), Image.BILINEAR, reducing_gap=self.reducing_gap))
        if self.center_crop:
            c = self.center_crop
            top = (rh - c) // 2
            arr = arr[top : top + c, top : top + c]
        # one table lookup per channel: the same float32 values as (v / 255 - mean) / std, in a third of the time
        return np.stack([np.take(_NORMALISE[c], arr[..., c]) for c in range(3)])

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
        rh, rw = self.resize_hw
        sx, sy = width / rw, height / rh
        x0, y0 = int(np.floor((x + off) * sx)), int(np.floor((y + off) * sy))
        x1 = min(width, int(np.ceil((x + off + w) * sx)))
        y1 = min(height, int(np.ceil((y + off + h) * sy)))
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)

    def area_scale(self, width: int, height: int) -> float:
        """Original pixels per model-input pixel."""
        rh, rw = self.resize_hw
        return (width * height) / float(rh * rw)

    def mask_to_input(self, mask: np.ndarray) -> np.ndarray:
        """A boolean ground-truth mask resized (nearest) to the model's input resolution."""
        rh, rw = self.resize_hw
        m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((rw, rh), Image.NEAREST)) > 127
        if self.center_crop:
            c = self.center_crop
            top = (rh - c) // 2
            m = m[top : top + c, top : top + c]
        return m


def load_mask(path: Path | None, width: int, height: int) -> np.ndarray:
    """A boolean defect mask at the image's size; all False when there is no mask file."""
    if path is None:
        return np.zeros((height, width), dtype=bool)
    m = open_image(path).convert("L")
    if m.size != (width, height):
        # a mask at another scale (some sets store them halved) is resized; one of another shape belongs to another
        # image, or was cropped, and would mark the wrong pixels: the pixel metrics would be wrong without a word
        if abs(math.log((m.width / m.height) / (width / height))) > 0.02:
            raise ImageError(
                f"{path}: the mask is {m.width}x{m.height}, its image {width}x{height}; a mask must cover its image "
                "(the same size, or the same shape at another scale)"
            )
        m = m.resize((width, height), Image.NEAREST)
    return mask_pixels(np.asarray(m))


def mask_pixels(arr: np.ndarray) -> np.ndarray:
    """The defect pixels of a grey mask: above mid-grey for a black-and-white mask (MVTec's 0/255, a JPEG's noisy
    edges), any non-zero value for a label mask whose values are all small (0/1, or one number per defect instance
    as VisA's masks are stored)."""
    hi = int(arr.max()) if arr.size else 0
    if 0 < hi <= 127 and len(np.unique(arr)) <= 16:
        return arr > 0
    return arr > 127
