"""The service's domain errors. Services raise them; the API maps each class to its status (404, 409, 413)."""

from linewatch.errors import LinewatchError


class NotFound(LinewatchError):
    """A resource the request names does not exist (404)."""


class Conflict(LinewatchError):
    """The request conflicts with the current state (409)."""


class TooLarge(LinewatchError):
    """An upload over a limit (413)."""
