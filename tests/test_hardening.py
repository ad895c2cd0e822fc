"""Safe defaults: headers on every response, request ids in the access log, Redis passwords kept
secret, and stalled clients that cannot keep the others out."""

import logging
import re
import selectors
import socket
import time

import pytest

from lib.devtools.local_servers import free_port, local_redis
from lib.devtools.processes import http, wait_for
from lib.runtime.config import load_config, mask_password
from tests.conftest import WALKTHROUGH_BODY

SAFE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Content-Type": "application/json"}


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/health", None), ("POST", "/payments", WALKTHROUGH_BODY), ("POST", "/payments", {"amount": 1}),
    ("GET", "/payments/nope", None), ("DELETE", "/payments", None), ("GET", "/nowhere", None),
])
def test_every_response_carries_the_safe_headers_and_a_request_id(client, method, path, body):
    _, headers, _ = client.request(method, path, body)
    assert {name: headers[name] for name in SAFE} == SAFE
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])


def test_a_sane_request_id_is_echoed(client):
    _, headers, _ = client.request("GET", "/health", headers={"HTTP_X_REQUEST_ID": "trace-42.a_b:c"})
    assert headers["X-Request-ID"] == "trace-42.a_b:c"


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "new\nline", "", "ünïcode"])
def test_an_odd_request_id_is_replaced(client, sent):
    _, headers, _ = client.request("GET", "/health", headers={"HTTP_X_REQUEST_ID": sent})
    assert headers["X-Request-ID"] != sent and re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])


def test_one_access_log_line_per_request_names_method_path_status_duration_and_id(client, caplog):
    caplog.set_level(logging.INFO, "paypoc.api")
    client.request("GET", "/payments/nope", headers={"HTTP_X_REQUEST_ID": "abc-123"})
    lines = [r.getMessage() for r in caplog.records if "request_id=" in r.getMessage()]
    assert len(lines) == 1
    assert re.fullmatch(r"GET /payments/nope 404 \d+\.\dms request_id=abc-123", lines[0])


def access_lines(caplog):
    """(level name, message) of each access log line the app wrote."""
    return [(r.levelname, r.getMessage()) for r in caplog.records if "request_id=" in r.getMessage()]


def test_health_checks_that_pass_stay_out_of_the_info_access_log_and_failing_ones_show(client, make_client, caplog):
    caplog.set_level(logging.DEBUG, "paypoc.api")
    for method, path in [("GET", "/health"), ("GET", "/ready"), ("HEAD", "/health"), ("GET", "/queue")]:
        client.request_raw(method, path)
    levels = {" ".join(message.split()[:3]): level for level, message in access_lines(caplog)}
    assert levels == {"GET /health 200": "DEBUG", "GET /ready 200": "DEBUG", "HEAD /health 200": "DEBUG",
                      "GET /queue 200": "INFO"}
    caplog.clear()
    make_client(beanstalk_addr="127.0.0.1:1").request("GET", "/ready")  # beanstalkd unreachable: 503
    assert [(level, message.split()[:3]) for level, message in access_lines(caplog)] == \
        [("INFO", ["GET", "/ready", "503"])]


def test_the_api_binds_to_loopback_unless_told_otherwise():
    assert load_config({}).host == "127.0.0.1"


def test_a_password_in_a_url_is_masked():
    assert mask_password("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert mask_password("redis://user:s3cret@redis:6379/0") == "redis://user:***@redis:6379/0"
    assert mask_password("redis://localhost:6379/0") == "redis://localhost:6379/0"


@pytest.fixture
def redis_with_password(tmp_path):
    port = free_port()
    server = local_redis(port, tmp_path, tmp_path / "log", "s3cret-pw").start()
    yield port, server.process.pid
    server.stop()


def test_the_local_redis_password_is_on_no_command_line(redis_with_password):
    _, pid = redis_with_password
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:  # what `ps` shows
        assert b"s3cret-pw" not in cmdline.read()


def test_with_the_right_password_a_payment_goes_end_to_end(redis_with_password, start_api, launch):
    url = f"redis://:s3cret-pw@127.0.0.1:{redis_with_password[0]}/0"
    api = start_api(redis_url=url)
    worker = launch("paypoc_worker.py", redis_url=url)
    assert http("GET", f"{api}/ready")[0] == 200
    payment_id = http("POST", f"{api}/payments", WALKTHROUGH_BODY)[2]["data"]["id"]
    assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "COMPLETED")
    assert wait_for(lambda: "redis://:***@" in worker.output()) and "s3cret-pw" not in worker.output()


def test_a_wrong_password_makes_ready_503_with_a_clear_log_line_and_no_password(redis_with_password, launch):
    port = free_port()
    api = launch("paypoc.py", port=port, redis_url=f"redis://:wrong-pw@127.0.0.1:{redis_with_password[0]}/0")
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: "listening" in api.output())
    status, _, body = http("GET", f"{base}/ready")
    assert status == 503 and body["redis"] == "down"
    assert http("POST", f"{base}/payments", WALKTHROUGH_BODY)[0] == 503
    log = api.output()
    assert "Redis refused the credentials in REDIS_URL" in log
    assert "wrong-pw" not in log and "redis://:***@127.0.0.1" in log


def test_a_request_that_is_not_valid_http_is_refused_by_the_server_itself_without_a_traceback(api):
    host, port = api.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):  # waitress closes the connection after its answer
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    # waitress answers before the app sees the request, in its own words (plain text, not JSON).
    assert head.lower().startswith(b"http/1.1 400") and b"content-type: text/plain" in head.lower()
    assert body.startswith(b"Bad Request") and b"Traceback" not in body


def test_hundreds_of_stalled_connections_keep_no_other_client_waiting_and_are_closed(api):
    host, port = api.rsplit("/", 1)[1].split(":")
    stalled = []
    for number in range(600):  # half send half a request line and stop, half send nothing at all
        sock = socket.create_connection((host, int(port)), timeout=5)
        if number % 2:
            sock.sendall(b"GET /hea")
        stalled.append(sock)
    try:
        for _ in range(5):
            started = time.monotonic()
            assert http("GET", f"{api}/health", timeout=1)[0] == 200 and time.monotonic() - started < 1
        # And the server closes them itself once they have been idle for its channel timeout.
        with selectors.DefaultSelector() as watch:
            for sock in stalled:
                watch.register(sock, selectors.EVENT_READ)
            closed = set()
            deadline = time.monotonic() + 30
            while len(closed) < len(stalled) and time.monotonic() < deadline:
                for key, _ in watch.select(1):
                    assert key.fileobj.recv(1) == b""  # closed, with no answer
                    watch.unregister(key.fileobj)
                    closed.add(key.fileobj)
        assert len(closed) == len(stalled)
    finally:
        for sock in stalled:
            sock.close()
