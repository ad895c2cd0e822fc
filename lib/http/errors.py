"""HTTPError: the one exception a handler raises to answer with an error status."""

from collections.abc import Iterable


class HTTPError(Exception):
    """An HTTP error response: the app answers it as {"error": message} with these headers."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = list(headers)
