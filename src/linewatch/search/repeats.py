"""Is this upload the same photo as an earlier one? Pixels, not a description of the part.

A perceptual hash (or an embedding) describes what is in the picture, and every photo of one product taken by a
line camera shows the same thing: on a one-product line, different parts sit a few hash bits apart. What tells a
repeated photo from another photo of the same kind of part is the photo's own pixels: a re-encoded or slightly
re-cropped copy keeps them (within JPEG's rounding), another exposure does not (sensor noise, texture, a part that
sits a pixel elsewhere). So a fingerprint keeps a few small windows of the greyscale image at full resolution, and
two images are the same photo when, aligned for a crop of a few pixels, those windows differ by no more than a
JPEG re-encode would make them differ."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

WINDOW = 32  # side of each compared window, pixels at full resolution
BLOCK = 16  # windows are compared as means of BLOCK × BLOCK pixels
MARGIN = 6  # pixels kept around each window, for the alignment a crop of up to MAX_CROP pixels needs
MAX_CROP = 4  # an image this many pixels narrower or shorter (in all) can still be a crop of the other
GRID = 3  # GRID × GRID windows, centred at 1/4, 2/4 and 3/4 of the width and height
SAME_PHOTO_RMS = 0.35  # greyscale levels (0-255): the largest RMS difference of block means that is the same photo
_SIDE = WINDOW + 2 * MARGIN
_HEADER = struct.Struct("<HII")  # version, width, height


@dataclass(frozen=True, eq=False)
class Fingerprint:
    width: int
    height: int
    windows: np.ndarray  # (GRID * GRID, _SIDE, _SIDE) uint8

    @cached_property
    def blocks(self) -> np.ndarray:
        """Block means of the windows without a margin, (GRID * GRID, n, n): all an image of the same size needs."""
        inner = self.windows[:, MARGIN : MARGIN + WINDOW, MARGIN : MARGIN + WINDOW].astype(np.float32)
        n = WINDOW // BLOCK
        return inner.reshape(GRID * GRID, n, BLOCK, n, BLOCK).mean(axis=(2, 4))

    def to_bytes(self) -> bytes:
        return _HEADER.pack(1, self.width, self.height) + self.windows.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        _, w, h = _HEADER.unpack_from(data)
        windows = np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size).reshape(GRID * GRID, _SIDE, _SIDE)
        return cls(w, h, windows)


def _centres(size: int) -> list[int]:
    return [size * (k + 1) // (GRID + 1) for k in range(GRID)]


def fingerprint(img: Image.Image) -> Fingerprint | None:
    """The windows of ``img`` (any mode) that `same_photo` compares; None for an image too small to hold them
    (such images can only repeat byte for byte)."""
    w, h = img.size
    if min(w, h) < (GRID + 1) * _SIDE // 2 + MAX_CROP:
        return None
    # each window cropped before it is made grey: a camera-sized image is never converted whole
    half = _SIDE // 2
    windows = [
        np.asarray(img.crop((cx - half, cy - half, cx - half + _SIDE, cy - half + _SIDE)).convert("L"), dtype=np.uint8)
        for cy in _centres(h)
        for cx in _centres(w)
    ]
    return Fingerprint(w, h, np.stack(windows))


def differences(a: Fingerprint, others: Sequence[Fingerprint]) -> np.ndarray:
    """RMS difference of ``a``'s windows from each of ``others``' (greyscale levels, as means of BLOCK × BLOCK
    pixels), under the best alignment a crop of up to MAX_CROP pixels allows (either image a crop of the other);
    inf where the sizes rule it out. Block means: a JPEG re-encode changes single pixels by a few levels but
    their local mean hardly at all, while two exposures differ in light and position at every scale."""
    out = np.full(len(others), np.inf)
    by_size: dict[tuple[int, int], list[int]] = {}
    same = [i for i, b in enumerate(others) if b.width == a.width and b.height == a.height]
    if same:  # the common case on a line (one camera, one size): no alignment to search
        stack = np.stack([others[i].blocks for i in same])
        out[same] = np.sqrt(np.square(stack - a.blocks[None]).mean(axis=(1, 2, 3)))
    for i, b in enumerate(others):
        dw, dh = abs(a.width - b.width), abs(a.height - b.height)
        if max(dw, dh) > 0 and dw <= MAX_CROP and dh <= MAX_CROP:
            by_size.setdefault((b.width, b.height), []).append(i)
    inner = a.windows[:, MARGIN : MARGIN + WINDOW, MARGIN : MARGIN + WINDOW].astype(np.float32)
    ax, ay = _centres(a.width), _centres(a.height)
    n = WINDOW // BLOCK
    for (bw, bh), idx in by_size.items():
        stack = np.stack([others[i].windows for i in idx]).astype(np.float32)  # (N, K, SIDE, SIDE)
        bx, by = _centres(bw), _centres(bh)
        dw, dh = a.width - bw, a.height - bh
        best = np.full(len(idx), np.inf)
        # b(x, y) = a(x + dx, y + dy): what was cut off the left and top of a (negative: of b)
        for dx in range(min(0, dw), max(0, dw) + 1):
            for dy in range(min(0, dh), max(0, dh) + 1):
                parts = []
                for k in range(GRID * GRID):
                    i, j = divmod(k, GRID)
                    sx, sy = ax[j] - bx[j] - dx, ay[i] - by[i] - dy  # where a's window sits in b's
                    parts.append(stack[:, k, MARGIN + sy : MARGIN + sy + WINDOW, MARGIN + sx : MARGIN + sx + WINDOW])
                diff = inner[None] - np.stack(parts, axis=1)  # (N, K, WINDOW, WINDOW)
                blocks = diff.reshape(len(idx), GRID * GRID, n, BLOCK, n, BLOCK).mean(axis=(3, 5))
                best = np.minimum(best, np.sqrt(np.square(blocks).mean(axis=(1, 2, 3))))
        out[idx] = best
    return out


def difference(a: Fingerprint, b: Fingerprint) -> float:
    """`differences` of one pair."""
    return float(differences(a, [b])[0])


def same_photo(a: Fingerprint, b: Fingerprint, max_rms: float = SAME_PHOTO_RMS) -> bool:
    """Whether ``b`` is ``a`` again: the same bytes re-encoded (JPEG, PNG), or cropped by up to MAX_CROP pixels."""
    return difference(a, b) <= max_rms
