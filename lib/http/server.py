"""The HTTP server: waitress, serving the app on a listening socket with THREADS threads until SIGTERM,
its limits set so that clients that connect and stall cannot keep the others out."""

import logging
import resource
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import waitress

log = logging.getLogger("paypoc.api")

# waitress reads a whole request body before the app sees it; past this many bytes it refuses
# the request itself (413). The app refuses anything over 64 KiB on its own, with a JSON error.
MAX_REQUEST_BODY = 1024 * 1024
BACKLOG = 1024  # connections the kernel holds for us while every process is busy (waitress's default)

# Every connection holds one of waitress's channels until the client closes it or it sits idle
# for channel_timeout. With waitress's defaults (100 channels, idle for 120 s, looked for every
# 30 s), 98 connections that send nothing, or half a request line, keep every other client out
# for 120 to 150 s. With the values below it takes 998, and they are gone after 10 to 11 s; a
# client that keeps opening them (100 a second) is for a proxy in front to stop. A higher limit
# would not do: waitress's loop visits every channel at each event, so with 2,000 to 3,000 open
# a new client waits up to 0.8 s, and with 5,000 over 10 s (measured: README, Hardening).
CONNECTION_LIMIT = 1000
ADJUSTMENTS = {
    "ident": "paypoc",
    "max_request_body_size": MAX_REQUEST_BODY,
    # Seconds without a byte before an idle connection, stalled mid-request or between requests,
    # is closed; a request being answered is never cut. A client that trickles a byte every few
    # seconds is not idle: only the connection limit holds it.
    "channel_timeout": 10,
    "cleanup_interval": 1,  # seconds between looks for idle connections (one pass over the channels)
    # poll(), not select(): select() cannot watch a descriptor numbered 1024 (FD_SETSIZE) or more,
    # and raises, stopping the server, once some 1,000 connections are open.
    "asyncore_use_poll": True,
    # The listening socket's backlog (BACKLOG): the connections past the limit wait there for a channel.
}
# Open files the process needs besides its channels: the listening socket, waitress's trigger,
# the standard streams, with room to spare; and each thread's Redis and beanstalkd connections.
OTHER_FILES = 64


def open_files_allowed(wanted: int) -> int:
    """Raise this process's limit on open files to `wanted`, as far as the hard limit allows; return
    how many files it may open now, up to `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def adjustments(threads: int) -> dict[str, Any]:
    """waitress's settings for a server of `threads` threads, in one place for every server made."""
    # At its limit on open files waitress cannot accept a connection, and tries again at once,
    # forever; so the connection limit stays under it. Many systems start a process at 1024.
    others = OTHER_FILES + 2 * threads
    connection_limit = min(CONNECTION_LIMIT, open_files_allowed(CONNECTION_LIMIT + others) - others)
    if connection_limit < CONNECTION_LIMIT:
        log.warning("Open files are limited (ulimit -n): serving at most %d connections", connection_limit)
    return {**ADJUSTMENTS, "threads": threads, "connection_limit": connection_limit}


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, to be shared by every API process; OSError if the port is taken."""
    return socket.create_server((host, port), backlog=BACKLOG)


def create_server(app: Callable, sockets: list[socket.socket], threads: int) -> Any:
    """A waitress server for app on sockets that are listening already; serve with .run()."""
    return waitress.create_server(app, sockets=sockets, **adjustments(threads))


def serve_until_stopped(app: Callable, sockets: list[socket.socket], threads: int) -> None:
    """Serve until SIGTERM, then return once the requests in flight are answered.

    waitress stops on SystemExit: it lets each of its threads finish the request in hand (its
    answer is written by that thread itself) and then leaves its loop.
    """
    server = create_server(app, sockets, threads)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server.run()
