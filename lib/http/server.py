"""The HTTP server: waitress, serving the app on a listening socket with THREADS threads, stopped
gently: on SIGTERM the requests in flight are answered before the process leaves."""

import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import waitress

from lib.http.wsgi import App

# waitress reads a whole request body before the app sees it; past this many bytes it refuses
# the request itself (413). The app refuses anything over 64 KiB on its own, with a JSON error.
MAX_REQUEST_BODY = 1024 * 1024
BACKLOG = 1024  # connections the kernel holds for us while every process is busy (waitress's default)
STOP_GRACE = 10  # seconds the requests in flight get to finish after SIGTERM
# waitress writes an answer from its main loop just after the app returns it: this long is
# ample for the last ones to go out before the loop is left.
FLUSH_MARGIN = 0.2


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, to be shared by every API process; OSError if the port is taken."""
    return socket.create_server((host, port), backlog=BACKLOG)


def create_server(app: Callable, sockets: list[socket.socket], threads: int) -> Any:
    """A waitress server for app on sockets that are listening already; serve with .run()."""
    return waitress.create_server(app, sockets=sockets, threads=threads, ident="paypoc",
                                  max_request_body_size=MAX_REQUEST_BODY)


def serve_until_stopped(app: App, sockets: list[socket.socket], threads: int) -> None:
    """Serve until SIGTERM; then answer new requests 503, let those in flight finish (STOP_GRACE
    at most) and their answers go out, and return. A second SIGTERM returns at once.

    waitress leaves its loop on SystemExit, but answers still waiting in it would be lost: so
    the first signal only starts the drain, and the drain raises the second signal itself.
    """
    server = create_server(app, sockets, threads)
    stopping = threading.Event()

    def drain():
        deadline = time.monotonic() + STOP_GRACE
        while app.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(FLUSH_MARGIN)
        signal.raise_signal(signal.SIGTERM)  # handled in the main thread, below

    def on_sigterm(signum, frame):
        if stopping.is_set():
            raise SystemExit(0)  # waitress closes on it
        stopping.set()
        app.stop_taking_requests()
        threading.Thread(target=drain, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    server.run()
