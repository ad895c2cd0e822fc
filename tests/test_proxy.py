"""The proxy docker-compose.yml puts in front of the API, run here by a local nginx with the
Dockerfile's own configuration before a real paypoc.py: thousands of stalled connections, more
than the API alone holds, keep no client waiting. Skipped, with the reason, where nginx is missing."""

import selectors
import shutil
import socket
import subprocess
import time

import pytest

from lib.devtools.local_servers import free_port
from lib.devtools.processes import http, wait_for
from lib.http.server import CONNECTION_LIMIT
from tests.conftest import WALKTHROUGH_BODY
from tests.docker_helpers import proxy_config

if shutil.which("nginx") is None:
    pytest.skip("nginx is not installed (apt-get install nginx-light): the proxy's configuration is not run",
                allow_module_level=True)

STALLED = 3 * CONNECTION_LIMIT  # three times what the API alone holds


@pytest.fixture
def start_proxy(tmp_path):
    """start_proxy(api_address): nginx with the Dockerfile's configuration in front of host:port; its base URL."""
    processes = []

    def start(api_address):
        port = free_port()
        config = "\n".join(proxy_config()).replace("http://api:8000", f"http://{api_address}")
        config = config.replace("listen 8000 ", f"listen 127.0.0.1:{port} ")
        # Files a local nginx may write whoever runs it: its temporary files, here; its pid, below.
        temporary = "".join(f"\n    {kind}_temp_path {tmp_path}/{kind};"
                            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp_path / "nginx.conf").write_text(config.replace("http {", "http {" + temporary, 1))
        with open(tmp_path / "nginx.log", "ab") as log:
            processes.append(subprocess.Popen(["nginx", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr",
                                               "-g", f"daemon off; pid {tmp_path}/nginx.pid;"], stdout=log, stderr=log))
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: answers_at_all(base)), (tmp_path / "nginx.log").read_text()
        return base

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def answers_at_all(base):
    """True once an HTTP server answers at base, whatever its status."""
    try:
        http("GET", f"{base}/health", timeout=1)
        return True
    except OSError:
        return False


def test_thousands_of_stalled_connections_through_the_proxy_keep_no_client_waiting_and_are_closed(
        api, start_proxy, many_sockets):
    proxy = start_proxy(api.rsplit("/", 1)[1])
    host, port = proxy.rsplit("/", 1)[1].split(":")
    stalled = []
    try:
        for number in range(STALLED):  # half send half a request line and stop, half send nothing
            sock = socket.create_connection((host, int(port)), timeout=5)
            if number % 2:
                sock.sendall(b"GET /hea")
            stalled.append(sock)
        for _ in range(5):
            started = time.monotonic()
            assert http("GET", f"{proxy}/health", timeout=1)[0] == 200 and time.monotonic() - started < 1
        assert http("POST", f"{proxy}/payments", WALKTHROUGH_BODY)[0] == 201
        # nginx closes each once its headers have not all come within client_header_timeout.
        with selectors.DefaultSelector() as watch:
            for sock in stalled:
                watch.register(sock, selectors.EVENT_READ)
            closed, deadline = 0, time.monotonic() + 30
            while closed < len(stalled) and time.monotonic() < deadline:
                for key, _ in watch.select(1):
                    watch.unregister(key.fileobj)
                    closed += 1
        assert closed == len(stalled)
    finally:
        for sock in stalled:
            sock.close()


def test_with_no_api_behind_it_the_proxy_answers_a_json_503(start_proxy):
    proxy = start_proxy(f"127.0.0.1:{free_port()}")  # nobody listens there
    status, headers, body = http("GET", f"{proxy}/payments/some-id")
    assert (status, body, headers["Retry-After"]) == (503, {"error": "API unavailable, try again shortly"}, "1")
    assert headers["Content-Type"] == "application/json"
