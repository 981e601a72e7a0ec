"""The service's domain errors. Services raise them; the API maps each class to its status (404, 409, 413)."""

from linewatch.errors import LinewatchError


class NotFound(LinewatchError):
    """A resource the request names does not exist (404)."""


class Conflict(LinewatchError):
    """The request conflicts with the current state (409)."""


class TooLarge(LinewatchError):
    """An upload over a limit (413)."""


class TooManyRequests(LinewatchError):
    """Over a rate limit (429); ``retry_after`` seconds until the next try is taken."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
