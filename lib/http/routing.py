"""A route table matcher: (method, path) -> handler and path parameters, or 404 / 405."""

import re
from collections.abc import Callable

from lib.http.errors import HTTPError


def _compile(template):
    """'/payments/{id}' -> a regex whose named groups are the template's parameters."""
    parts = re.split(r"\{(\w+)\}", template)
    # re.split alternates literal text and parameter names: even indexes are literal.
    pattern = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(pattern + r"\Z")


class Router:
    """Matches requests against a list of (method, path template, handler) rows."""

    def __init__(self, routes: list[tuple[str, str, Callable]]):
        self._routes = [(method, template, _compile(template), handler) for method, template, handler in routes]
        self.methods = {method for method, _, _ in routes}  # the methods it answers
        if "GET" in self.methods:
            self.methods.add("HEAD")  # see match

    def match(self, method: str, path: str) -> tuple[Callable, dict[str, str], str]:
        """Return (handler, params, template) for the request, or raise HTTPError 404 or 405 (with Allow).

        HEAD is answered by the GET route, as HTTP requires of every server (and as bottle and
        werkzeug route it); the app then sends the headers without the body.
        """
        wanted = "GET" if method == "HEAD" else method
        allowed = []
        for route_method, template, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == wanted:
                return handler, found.groupdict(), template
            allowed += [route_method, "HEAD"] if route_method == "GET" else [route_method]
        if allowed:
            raise HTTPError(405, f"method {method} not allowed; use {', '.join(allowed)}",
                            [("Allow", ", ".join(allowed))])
        raise HTTPError(404, "not found")
