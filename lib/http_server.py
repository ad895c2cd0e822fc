"""The waitress server, with its own error answers (bad HTTP, oversized headers) in JSON too."""

import logging
import uuid

import waitress
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from lib.jsonio import dumps
from lib.wsgi import JSON, SAFE_HEADERS

log = logging.getLogger("paypoc.api")

# waitress answers some requests before the app sees them: a malformed request line, a bad
# Content-Length, headers over its limit, a body over MAX_REQUEST_BODY. Those answers follow
# the same contract as the app's: a JSON {"error": ...}, the same safe headers, a request id.
MAX_REQUEST_BODY = 1024 * 1024  # bytes waitress buffers at most; the app refuses more than 64 KiB


class JSONErrorTask(ErrorTask):
    """waitress's error response, written as JSON."""

    def execute(self):
        error = self.request.error
        body = (dumps({"error": f"{error.reason}: {error.body}"}) + "\n").encode()
        request_id = uuid.uuid4().hex
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", JSON), *SAFE_HEADERS, ("X-Request-ID", request_id)])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        log.info("- - %d (refused by the HTTP server: %s) request_id=%s", error.code, error.body, request_id)


class JSONErrorChannel(HTTPChannel):
    """A waitress connection whose error responses are JSON."""

    error_task_class = JSONErrorTask


def create_server(app, config):
    """A waitress server for app on HOST:PORT with THREADS threads; run it with .run()."""
    server = waitress.create_server(app, host=config.host, port=config.port, threads=config.threads,
                                    ident="paypoc", max_request_body_size=MAX_REQUEST_BODY)
    server.channel_class = JSONErrorChannel
    return server
