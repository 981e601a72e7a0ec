"""The inspection area: the part of every photo a model inspects, given as a mask image (white = inspected, black =
ignored) in the training photos' frame.

A station's photos often hold things that change from part to part and are no defect: a printed date code or lot
number, a label, the fixture, the conveyor or tray around the part. Left in, they raise false alarms, and thresholds
set on good parts where they vary must sit high enough to pass them, which hides real defects elsewhere. Masked out,
the model neither scores nor flags them: every patch of the model's grid whose cell lies mostly outside the area
scores 0 before the image score is taken (PatchCore's most anomalous patch, PaDiM's map peak), the map is 0 there,
and the thresholds are set on the held-out good images scored that way. The mask is resized as every photo is
(``Preprocess.mask_to_input``), so one mask serves photos of any size with the training photos' framing.

The model keeps its own copy (``inspect_area.png`` in the model directory, a file entry of the manifest), so a saved
model, its ONNX export (the mask is a constant of the graph) and the service need nothing else.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from linewatch.errors import LinewatchError

AREA_FILE = "inspect_area.png"
MAX_SIDE = 1024  # a mask is kept at most this large: far finer than any model's input, and a few hundred kB at most
ASPECT_TOLERANCE = 0.05  # the mask's width / height may differ from the photos' median by this share


def read_area(path: str | Path) -> np.ndarray:
    """The mask at ``path`` as a boolean (height, width) array, True where inspected (pixels lighter than mid-grey),
    reduced to at most ``MAX_SIDE`` on its longer side; LinewatchError (the image errors included) when it cannot be
    read or inspects nothing."""
    from linewatch.vision.images import open_image

    return area_from_image(open_image(Path(path)), f"inspection area {path}")


def area_from_image(img: Image.Image, name: str = "inspection area") -> np.ndarray:
    """``read_area`` of an image already opened (an upload)."""
    grey = img.convert("L")
    if max(grey.size) > MAX_SIDE:
        f = MAX_SIDE / max(grey.size)
        grey = grey.resize((max(1, round(grey.width * f)), max(1, round(grey.height * f))), Image.BILINEAR)
    area = np.asarray(grey) > 127
    if not area.any():
        raise LinewatchError(f"{name}: no pixel is inspected (white = inspected, black = ignored)")
    return area


def area_png(area: np.ndarray) -> bytes:
    """The mask as the PNG a model keeps (``AREA_FILE``): 255 inspected, 0 ignored."""
    buf = io.BytesIO()
    Image.fromarray(area.astype(np.uint8) * 255, "L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@lru_cache(maxsize=8)
def _cached(path: str, _mtime_ns: int, _size: int) -> np.ndarray:
    area = read_area(path)
    area.setflags(write=False)
    return area


def area_of(params: dict) -> np.ndarray | None:
    """The inspection area a detector's parameters name (``inspect_area``), read once per file version; None for the
    whole image."""
    path = params.get("inspect_area")
    if not path:
        return None
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise LinewatchError(f"inspection area not found: {p}") from None
    return _cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def check_aspect(area: np.ndarray, aspect: float | None, name: str | Path) -> None:
    """LinewatchError when the mask's shape is not the training photos' (``aspect``: their median width / height): a
    mask drawn on another framing would mask the wrong places once resized like the photos. ``name``: the mask's
    file, or what the message calls it."""
    if aspect is None:
        return
    h, w = area.shape
    if abs(math.log((w / h) / aspect)) > math.log1p(ASPECT_TOLERANCE):
        raise LinewatchError(
            f"inspection area {name} has width / height {w / h:.2f} but the training photos' median is {aspect:.2f}: "
            "draw the mask on one of the photos, at its size"
        )


def inspected_share(area: np.ndarray) -> float:
    """The share of each photo the area inspects, as the manifest, the training figures and the service keep it."""
    return round(float(area.mean()), 4)


def cell_weights(area_input: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w) float32 of 1 and 0: the cells of an h x w grid over the model input whose pixels lie at least half in
    the area (``area_input``: the mask at the input's size)."""
    share = np.asarray(
        Image.fromarray(area_input.astype(np.float32), "F").resize((int(w), int(h)), Image.BOX), dtype=np.float32
    )
    cells = (share >= 0.5).astype(np.float32)
    if not cells.any():  # a thin area: the cell it covers most
        cells.flat[int(np.argmax(share))] = 1.0
    return cells


def at_size(area: np.ndarray, width: int, height: int) -> np.ndarray:
    """The mask resized (nearest) to a photo of ``width`` x ``height``: True where that photo is inspected."""
    if area.shape == (height, width):
        return area
    img = Image.fromarray(area.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)
    return np.asarray(img) > 127


def write_area(area: np.ndarray, path: str | Path) -> None:
    Path(path).write_bytes(area_png(area))
