"""Small JPEG thumbnails of stored images, kept in a bounded LRU (an image's bytes never change under its key)."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from linewatch.services.context import AppContext
from linewatch.services.errors import NotFound
from linewatch.store.blobs import BlobNotFound
from linewatch.vision.images import open_image_bytes

THUMB_SIDE = 192


class Thumbnails:
    """Recently made thumbnails (an image's bytes never change under its key): a live page showing 20 new
    inspections a second asks for each one once per viewer; this serves the repeats without decoding again."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


THUMBNAILS = Thumbnails()


def thumbnail(c: AppContext, key: str) -> bytes:
    cached = THUMBNAILS.get(key)
    if cached is not None:
        return cached
    try:
        data = c.blobs.get(key)
    except BlobNotFound:
        raise NotFound("the stored image is missing") from None
    img = open_image_bytes(data, "stored image", c.settings.max_image_pixels).convert("RGB")
    img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    THUMBNAILS.put(key, buf.getvalue())
    return buf.getvalue()
