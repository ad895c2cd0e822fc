"""A small WSGI application object: route, call the handler, answer JSON, log one line, time it."""

import itertools
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import NamedTuple, Protocol

from lib.http.errors import HTTPError
from lib.http.jsonio import dumps, read_json_body
from lib.http.routing import Router

log = logging.getLogger("paypoc.api")

JSON = "application/json"
# Sent on every response: no cache keeps a payment, and no browser guesses another content type.
SAFE_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
# A client's X-Request-ID is echoed only when it is short and plain, so it is safe in a log line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """New request ids: a random prefix of this App's (so of this process's) and a count. Unique,
    with no call for randomness (a system call) on every request. The cost: ids are sequential,
    so a client can tell how many requests a process has served; nothing here is secret."""

    def __init__(self):
        self.prefix = uuid.uuid4().hex[:16]
        self._count = itertools.count(1)

    def for_request(self, environ: dict) -> str:
        """The client's X-Request-ID when it is sane, else a new one."""
        sent = environ.get("HTTP_X_REQUEST_ID", "")
        return sent if _SANE_REQUEST_ID.fullmatch(sent) else f"{self.prefix}{next(self._count):016x}"


class Request:
    """What a handler may read of the request."""

    def __init__(self, environ: dict, request_id: str):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"]
        self.path = environ.get("PATH_INFO") or "/"
        self.query = environ.get("QUERY_STRING", "")
        self.id = request_id
        self.route = "unmatched"  # the route template, once the router has found one

    def header(self, name: str) -> str | None:
        """A request header's value, or None."""
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    def json(self) -> object:
        """The body decoded as JSON (see lib.http.jsonio.read_json_body for the 4xx it may raise)."""
        return read_json_body(self.environ)


class Response(NamedTuple):
    """What a handler returns: a status, a body to serialise as JSON (or, with another
    content type, the text itself), and extra headers."""

    status: int
    body: object
    headers: Sequence[tuple[str, str]] = ()
    content_type: str = JSON


class RequestDurations(Protocol):
    """What the app times requests with (lib/api/durations.py has one)."""

    def observe(self, method: str, route: str, seconds: float) -> None:
        """Count one request to route that took `seconds`."""


class App:
    """The WSGI callable. routes: (method, path template, handler(services, request, **params))
    rows; unavailable(error): the HTTPError (a 503) for an error that means a dependency cannot
    serve now, or None for any other error; durations: a RequestDurations (lib/api/durations.py
    has one) that times every request by route; probes: the routes a health check calls every few
    seconds, logged at DEBUG when they answer 200."""

    def __init__(self, routes: list[tuple[str, str, Callable]], services: object,
                 unavailable: Callable[[Exception], HTTPError | None], durations: RequestDurations,
                 probes: Sequence[str] = ()):
        self.router = Router(routes)
        self.services = services
        self.unavailable = unavailable
        self.durations = durations
        self.ids = RequestIds()
        self.probes = frozenset(probes)

    def _respond(self, request):
        try:
            handler, params, request.route = self.router.match(request.method, request.path)
            return handler(self.services, request, **params)
        except HTTPError as error:
            return Response(error.status, {"error": error.message}, error.headers)
        except Exception as error:
            answer = self.unavailable(error)
            if answer is not None:
                return Response(answer.status, {"error": answer.message}, answer.headers)
            # Anything else is a bug: the traceback goes to the log, never to the client.
            log.exception("%s %s failed [%s]", request.method, request.path, request.id)
            return Response(500, {"error": "internal error"})

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        started = time.perf_counter()
        request = Request(environ, self.ids.for_request(environ))
        response = self._respond(request)
        # Serialise first: if that failed, no headers would have gone out yet.
        # The trailing newline keeps curl output (and the original's loop of ten POSTs) one answer a line.
        text = dumps(response.body) + "\n" if response.content_type == JSON else response.body
        body = text.encode("utf-8")
        headers = [("Content-Type", response.content_type), *SAFE_HEADERS, ("Content-Length", str(len(body))),
                   ("X-Request-ID", request.id)]
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}",
                       headers + list(response.headers))
        seconds = time.perf_counter() - started
        # A client may send any method it makes up: only the routed ones are labels of their
        # own, so a stream of invented methods cannot add series (and memory) without end.
        method = request.method if request.method in self.router.methods else "other"
        self.durations.observe(method, request.route, seconds)
        # The access log: one line per request; a probe that answers 200 only at DEBUG, or a
        # health check every 5 s would bury the lines that matter. A failing probe still shows.
        quiet = request.route in self.probes and response.status == 200
        log.log(logging.DEBUG if quiet else logging.INFO, "%s %s %d %.1fms request_id=%s", request.method,
                request.path, response.status, seconds * 1000, request.id)
        # A HEAD response ends with its headers (Content-Length still tells the GET's length):
        # waitress would send a body, which a client keeping the connection would read as the
        # start of its next response.
        return [] if request.method == "HEAD" else [body]
