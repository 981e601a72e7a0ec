"""Errors a user can cause. The CLI prints their message on one line and exits with status 2."""


class LinewatchError(Exception):
    """A problem the user can fix: the message says what happened and what to do."""


class ImageError(LinewatchError):
    """An image that cannot be read, or is too large to read safely."""


class ImageTooLarge(ImageError):
    """An image over the pixel limit, or one that would decompress to more (a decompression bomb)."""


class ModelFileError(LinewatchError):
    """A model directory that is missing, corrupt or written by an incompatible version."""


class DatasetError(LinewatchError):
    """A dataset path that does not hold usable images."""
