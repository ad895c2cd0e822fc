"""The HTTP server: waitress, serving the app on a listening socket with THREADS threads until SIGTERM."""

import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import waitress

# waitress reads a whole request body before the app sees it; past this many bytes it refuses
# the request itself (413). The app refuses anything over 64 KiB on its own, with a JSON error.
MAX_REQUEST_BODY = 1024 * 1024
BACKLOG = 1024  # connections the kernel holds for us while every process is busy (waitress's default)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, to be shared by every API process; OSError if the port is taken."""
    return socket.create_server((host, port), backlog=BACKLOG)


def create_server(app: Callable, sockets: list[socket.socket], threads: int) -> Any:
    """A waitress server for app on sockets that are listening already; serve with .run()."""
    return waitress.create_server(app, sockets=sockets, threads=threads, ident="paypoc",
                                  max_request_body_size=MAX_REQUEST_BODY)


def serve_until_stopped(app: Callable, sockets: list[socket.socket], threads: int) -> None:
    """Serve until SIGTERM, then return once the requests in flight are answered.

    waitress stops on SystemExit: it lets each of its threads finish the request in hand (its
    answer is written by that thread itself) and then leaves its loop.
    """
    server = create_server(app, sockets, threads)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server.run()
