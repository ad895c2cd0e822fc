"""`make dev` on a real Docker engine, in a fresh clone: healthchecks, the walkthrough, scaling,
restarts with payments in flight, and `make down`. Skipped, with the reason, where no engine answers."""

import concurrent.futures
import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest

from lib.devtools.processes import http, wait_for
from tests.docker_helpers import ComposeStack, engine_problem, runtime_python_files
from tests.quick_start import promised, quick_start_steps, run

API = "http://localhost:8000"
SERVICES = {"proxy", "api", "worker", "redis", "beanstalkd", "beanstalkd-ui"}
HEALTHCHECKED = ("proxy", "api", "redis", "beanstalkd")

PROBLEM = engine_problem()
if PROBLEM:
    pytest.skip(f"Compose stack not run: {PROBLEM}", allow_module_level=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack `make dev` starts in a clone of HEAD; everything it made is removed afterwards."""
    stack = ComposeStack(tmp_path_factory.mktemp("compose") / "paypoc")
    stack.clone()
    try:
        stack.make_dev()
        yield stack
    finally:
        stack.remove()


def payment(user_id):
    """A POST /payments body for user_id."""
    return {"user_id": user_id, "amount": 100, "currency": "XAF"}


def post_payment(user_id):
    """Take a payment for user_id; return its id."""
    status, _, body = http("POST", f"{API}/payments", payment(user_id))
    assert status == 201, body
    return body["data"]["id"]


def status_of(payment_id):
    """The payment's status now: PENDING, PROCESSING, COMPLETED or FAILED."""
    return http("GET", f"{API}/payments/{payment_id}")[2]["status"]


def answer_status(method, path, body=None):
    """The HTTP status of one request, or the error that kept it from being answered."""
    try:
        return http(method, f"{API}{path}", body)[0]
    except (urllib.error.URLError, OSError) as error:
        return repr(error)


def test_make_dev_in_a_clean_clone_returns_once_every_healthcheck_passes(stack):
    assert "API on http://localhost:8000, beanstalkd UI on http://localhost:8902" in stack.make_dev_output
    for service in HEALTHCHECKED:  # `make dev` waited for them: no polling here
        assert stack.health(service) == ["healthy"], service
    assert {service: [c["State"]["Status"] for c in stack.inspect(service)] for service in SERVICES} == \
        {service: ["running"] for service in SERVICES}
    with urllib.request.urlopen("http://localhost:8902/", timeout=5) as page:
        assert page.status == 200
    # COMPOSE_PROJECT_NAME wins over the file's `name: paypoc`, keeping this stack apart from a developer's.
    assert stack.inspect("api")[0]["Name"] == f"/{stack.project}-api-1"


def test_the_walkthrough_payment_is_completed(stack):
    walkthrough = {"user_Id": "user_123", "amount": 1500, "currency": "XAF"}  # the walkthrough's body, verbatim
    status, headers, body = http("POST", f"{API}/payments", walkthrough)
    assert status == 201 and body["data"]["status"] == "PENDING"
    payment_id = body["data"]["id"]
    assert headers["Location"] == f"/payments/{payment_id}"
    assert wait_for(lambda: status_of(payment_id) == "COMPLETED", timeout=30)


def test_the_readmes_quick_start_works_as_written_on_port_8000(stack, tmp_path):
    (post, posted), (get, got), (loop, statuses) = quick_start_steps()
    answer = run(post, payment_file=tmp_path / "payment.json")
    assert promised(answer, posted), answer
    assert wait_for(lambda: "COMPLETED" in run(get, payment_file=tmp_path / "payment.json"), timeout=30)
    assert promised(run(get, payment_file=tmp_path / "payment.json"), got)
    assert promised(run(loop), statuses) and run(loop).split() == ["429"] * 10


def test_thousands_of_stalled_connections_keep_no_client_waiting(stack, many_sockets):
    stalled = []
    try:
        for number in range(3000):  # three times what the API alone holds; half send half a request line
            sock = socket.create_connection(("localhost", 8000), timeout=5)
            if number % 2:
                sock.sendall(b"GET /hea")
            stalled.append(sock)
        for _ in range(5):
            started = time.monotonic()
            assert http("GET", f"{API}/health", timeout=1)[0] == 200 and time.monotonic() - started < 1
    finally:
        for sock in stalled:
            sock.close()


def test_scaling_to_three_workers_shows_three_on_queue(stack):
    stack.compose("up", "--detach", "--wait", "--scale", "worker=3")
    assert len(stack.containers("worker")) == 3
    assert wait_for(lambda: len(http("GET", f"{API}/queue")[2]["workers"]) == 3, timeout=30)


@pytest.mark.parametrize("service", ["redis", "beanstalkd"])
def test_a_restart_with_payments_in_flight_loses_none_and_no_request_fails_once_healthy(stack, service):
    in_flight = [post_payment(f"{service}-{uuid.uuid4().hex[:8]}") for _ in range(6)]
    assert wait_for(lambda: "PROCESSING" in map(status_of, in_flight), timeout=30)

    started = time.monotonic()
    stack.compose("restart", service)
    assert time.monotonic() - started < 5, f"restarting {service} waited for the stop timeout"
    assert wait_for(lambda: stack.health(service) == ["healthy"], timeout=60)

    # Every kind of request, many at once so that each API thread (and each connection it kept
    # from before the restart) is used: none may fail now that the service answers again.
    kinds = [("GET", "/ready", None), ("GET", "/queue", None), ("GET", f"/payments/{in_flight[0]}", None)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for batch_number in range(4):
            batch = [kinds[n % 3] for n in range(12)]
            batch += [("POST", "/payments", payment(f"{service}-{batch_number}-{n}")) for n in range(2)]
            answers = pool.map(lambda request: answer_status(*request), batch)
            failed = [(method, path, answer) for (method, path, _), answer in zip(batch, answers)
                      if answer not in (200, 201)]
            assert failed == [], f"batch {batch_number + 1} of 4 after the {service} restart"

    assert wait_for(lambda: all(status_of(payment_id) == "COMPLETED" for payment_id in in_flight), timeout=90)
    assert http("GET", f"{API}/queue")[2]["jobs"]["buried"] == 0


def test_the_app_image_holds_what_the_api_and_worker_import_and_nothing_else(stack):
    list_python_files = "import pathlib; print(*(p.relative_to('/app') for p in pathlib.Path('/app').rglob('*.py')))"
    listing = stack.compose("exec", "-T", "api", "python", "-c", list_python_files)
    assert set(listing.split()) == runtime_python_files(stack.dir)
    no_pytest = stack.run("docker", "compose", "exec", "-T", "api", "python", "-c", "import pytest")
    assert no_pytest.returncode == 1 and "No module named 'pytest'" in no_pytest.stderr


def test_the_redis_password_is_on_no_command_line_and_redis_requires_it(stack):
    password = stack.redis_password()
    processes = stack.compose("top")  # the `ps` of every container, with whole command lines
    assert "redis-server" in processes and password not in processes
    redis = stack.inspect("redis")[0]
    assert password not in " ".join([redis["Path"], *redis["Args"]])
    refused = stack.run("docker", "compose", "exec", "-T", "-e", "REDISCLI_AUTH=", "redis", "redis-cli", "ping")
    assert "NOAUTH" in refused.stdout


def test_the_healthchecks_leave_no_error_in_the_logs(stack):
    assert wait_for(lambda: len(stack.inspect("beanstalkd")[0]["State"]["Health"]["Log"]) >= 3, timeout=30)
    logs = stack.compose("logs", "--no-color")
    assert "Connection reset by peer" not in logs
    assert "GET /ready 200" not in logs  # the api's healthcheck passes every 5 s, at DEBUG only


def test_make_down_stops_every_container_on_sigterm_in_seconds(stack):
    names = {container["Name"].lstrip("/") for service in SERVICES for container in stack.inspect(service)}
    since = time.time()
    result = stack.run("make", "down")
    assert result.returncode == 0, result.stdout + result.stderr
    stops = stack.stops(since, time.time())
    assert set(stops) == names  # the proxy, api, three workers, redis, beanstalkd, the UI
    for name, stop in stops.items():
        assert stop.signals == ["15"], f"{name} was not stopped by SIGTERM alone: {stop}"
        assert stop.seconds < 5, f"{name} took {stop.seconds:.1f} s to stop"
        # 143 is 128 + SIGTERM: beanstalkd has no shutdown step and ends by the signal itself (its
        # binlog is written as jobs change); the UI is an outside image that may do the same.
        expected = {"beanstalkd": (143,), "beanstalkd-ui": (0, 143)}.get(stop.service, (0,))
        assert stop.exit_code in expected, f"{name} exited {stop.exit_code}"
    assert stack.compose("ps", "--all", "--quiet").split() == []
