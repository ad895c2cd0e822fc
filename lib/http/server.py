"""The HTTP server: waitress, serving the app on HOST:PORT with THREADS threads."""

from collections.abc import Callable
from typing import Any

import waitress

# waitress reads a whole request body before the app sees it; past this many bytes it refuses
# the request itself (413). The app refuses anything over 64 KiB on its own, with a JSON error.
MAX_REQUEST_BODY = 1024 * 1024


def create_server(app: Callable, config: Any) -> Any:
    """A waitress server for app on config.host:config.port with config.threads threads; serve with .run()."""
    return waitress.create_server(app, host=config.host, port=config.port, threads=config.threads,
                                  ident="paypoc", max_request_body_size=MAX_REQUEST_BODY)
