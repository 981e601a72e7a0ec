"""Decoding images in a background thread while the model works on the previous batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from linewatch.errors import ImageError
from linewatch.vision.images import Preprocess, open_image

Source = str | Path | Image.Image
#: called with (path, why) for an image a stream could not read and went on without
Unreadable = Callable[[str | None, str], None]


@dataclass
class Batch:
    inputs: np.ndarray  # (B, 3, H, W) float32
    sizes: list[tuple[int, int]]  # original (width, height)
    names: list[str | None]
    skipped: list[str] = field(default_factory=list)  # "path: why" of unreadable images
    skipped_names: list[str | None] = field(default_factory=list)  # ... and their paths (None: an image object)

    def report_skipped(self, unreadable: Unreadable | None) -> None:
        """Tell ``unreadable`` (name, why) of each image of this batch that could not be read."""
        if unreadable is not None:
            for name, why in zip(self.skipped_names, self.skipped, strict=True):
                unreadable(name, why)


def _name(src: Source) -> str | None:
    return None if isinstance(src, Image.Image) else str(src)


def load_batch(chunk: Sequence[Source], pre: Preprocess, skip_bad: bool = False) -> Batch:
    """One batch: the images decoded and preprocessed, in order; an unreadable one raises, or with ``skip_bad`` is
    listed in ``skipped``."""
    arrays, sizes, names, skipped, skipped_names = [], [], [], [], []
    for src in chunk:
        try:
            img = open_image(src, draft_size=max(pre.resize_hw))
        except ImageError as e:
            if not skip_bad:
                raise
            skipped.append(str(e))
            skipped_names.append(_name(src))
            continue
        arrays.append(pre(img))
        sizes.append(img.info.get("original_size", img.size))
        names.append(_name(src))
    inputs = np.stack(arrays) if arrays else np.zeros((0, 3, *pre.input_hw), np.float32)
    return Batch(inputs, sizes, names, skipped, skipped_names)


def iter_batches(
    sources: Sequence[Source], pre: Preprocess, batch_size: int = 8, skip_bad: bool = False
) -> Iterator[Batch]:
    """Batches in order; the next one is decoded while the caller works on the current one."""
    chunks = [sources[i : i + batch_size] for i in range(0, len(sources), batch_size)]
    if not chunks:
        return
    if len(chunks) == 1:  # nothing to overlap with: no thread (a service scoring one upload at a time)
        yield load_batch(chunks[0], pre, skip_bad)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load_batch, chunks[0], pre, skip_bad)
        for nxt in chunks[1:]:
            current = pending.result()
            pending = pool.submit(load_batch, nxt, pre, skip_bad)
            yield current
        yield pending.result()
