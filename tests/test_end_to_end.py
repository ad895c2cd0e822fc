"""The real entry points as processes, driven over HTTP as the README's curl examples drive them."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from lib.local_servers import free_port
from tests.test_worker import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Process:
    """An entry point running as a child process, its output collected in a file."""

    def __init__(self, script, env, log_path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen([sys.executable, script], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})

    def output(self):
        with open(self.log_path) as log:
            return log.read()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout)


@pytest.fixture
def launch(env, tmp_path):
    """launch(script, **settings) starts paypoc.py or paypoc_worker.py; all are stopped at teardown."""
    processes = []

    def start(script, **settings):
        process = Process(script, {**env, **{k.upper(): str(v) for k, v in settings.items()}},
                          tmp_path / f"{script}-{len(processes)}.log")
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


def http(method, url, body=None):
    """(status, headers, decoded JSON) for one request, as curl would send it."""
    request = urllib.request.Request(url, method=method, data=body,
                                     headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


@pytest.fixture
def api(launch):
    """A running API on a free port: its base URL."""
    port = free_port()
    launch("paypoc.py", port=port)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return http("GET", f"{base}/health")[0] == 200
        except OSError:
            return False

    assert wait_for(up), "the API did not start"
    return base


SEED_POST = b'''{
    "user_Id": "user_123",
    "amount": 1500,
    "currency": "XAF"
  }'''


def test_the_seeds_walkthrough_from_post_to_completed(api, launch):
    worker = launch("paypoc_worker.py", processing_delay=0.5)
    status, headers, body = http("POST", f"{api}/payments", SEED_POST)
    assert status == 201 and body["data"]["status"] == "PENDING"
    location = api + headers["Location"]
    assert wait_for(lambda: http("GET", location)[2]["status"] == "COMPLETED")
    payment = http("GET", location)[2]
    assert (payment["user_id"], payment["amount"], payment["currency"]) == ("user_123", 1500, "XAF")
    assert payment["updated_at"] > payment["initiated_at"]
    assert worker.stop() == 0
    log = worker.output()
    assert "Worker #1 started" in log and f"Payment {payment['id']} processed successfully" in log


def test_the_seeds_rate_limit_loop_over_http(api):
    statuses = [http("POST", f"{api}/payments", b'{"userId":"test","amount":100,"currency":"XAF"}')
                for _ in range(10)]
    assert [s for s, _, _ in statuses] == [201] * 5 + [429] * 5
    assert statuses[-1][2] == {"error": "Rate limit exceeded. Try again later."}
    assert statuses[-1][1]["Retry-After"] and statuses[-1][1]["RateLimit-Policy"] == '"default";q=5;w=60'


def test_five_worker_threads_process_five_payments_at_once(api, launch):
    ids = [http("POST", f"{api}/payments", json.dumps({"user_id": f"u{n}", "amount": 1, "currency": "USD"})
                .encode())[2]["data"]["id"] for n in range(5)]
    worker = launch("paypoc_worker.py", max_workers=5, processing_delay=1)
    assert wait_for(lambda: all(http("GET", f"{api}/payments/{i}")[2]["status"] == "COMPLETED" for i in ids))
    assert worker.stop() == 0
    lines = worker.output().splitlines()
    for n in range(1, 6):
        assert any(line.endswith(f"Worker #{n} started") for line in lines)
    processing = [i for i, line in enumerate(lines) if "Processing payment ID" in line]
    finished = [i for i, line in enumerate(lines) if line.endswith("processed successfully")]
    assert len(processing) == 5 and max(processing) < min(finished)


def test_sigterm_lets_the_job_in_hand_finish_and_exits_0(api, launch):
    worker = launch("paypoc_worker.py", processing_delay=1.5)
    payment_id = http("POST", f"{api}/payments", SEED_POST)[2]["data"]["id"]
    assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "PROCESSING")
    assert worker.stop(signal.SIGTERM) == 0
    assert http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "COMPLETED"


def test_a_second_signal_exits_at_once(api, launch):
    worker = launch("paypoc_worker.py", processing_delay=30)
    payment_id = http("POST", f"{api}/payments", SEED_POST)[2]["data"]["id"]
    assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "PROCESSING")
    worker.popen.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert worker.stop(signal.SIGINT, timeout=5) != 0  # not the 30 s it would take to finish


def test_the_api_stops_cleanly_on_sigterm(launch):
    port = free_port()
    api = launch("paypoc.py", port=port)
    assert wait_for(lambda: "listening" in api.output())
    assert api.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("script, name, value", [
    ("paypoc.py", "PORT", "abc"),
    ("paypoc_worker.py", "MAX_WORKERS", "0"),
    ("paypoc.py", "RATE_LIMIT", "-1"),
    ("paypoc_worker.py", "PROCESSING_DELAY", "soon"),
    ("paypoc.py", "REDIS_URL", "localhost:6379"),
])
def test_bad_configuration_exits_2_with_one_line_naming_the_variable(script, name, value):
    result = subprocess.run([sys.executable, script], cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={**os.environ, name: value})
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"paypoc: {name}={value!r} is invalid: expected")
