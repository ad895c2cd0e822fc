"""The real entry points as processes, driven over HTTP as the README's curl examples drive them."""

import json
import os
import signal
import subprocess
import sys
import time
from http.client import HTTPConnection

import pytest

from lib.devtools.local_servers import free_port
from lib.devtools.processes import ROOT, http, wait_for
from lib.runtime.config import ConfigError, load_config
from tests.quick_start import promised, quick_start_steps, run

WALKTHROUGH_POST = b'''{
    "user_Id": "user_123",
    "amount": 1500,
    "currency": "XAF"
  }'''


def test_the_originals_walkthrough_from_post_to_completed(api, launch):
    worker = launch("paypoc_worker.py", processing_delay=0.5)
    status, headers, body = http("POST", f"{api}/payments", WALKTHROUGH_POST)
    assert status == 201 and body["data"]["status"] == "PENDING"
    location = api + headers["Location"]
    assert wait_for(lambda: http("GET", location)[2]["status"] == "COMPLETED")
    payment = http("GET", location)[2]
    assert (payment["user_id"], payment["amount"], payment["currency"]) == ("user_123", 1500, "XAF")
    assert payment["updated_at"] > payment["initiated_at"]
    assert worker.stop() == 0
    log = worker.output()
    assert "Worker #1 started" in log and f"Payment {payment['id']} processed successfully" in log


def test_the_originals_rate_limit_loop_over_http(api):
    statuses = [http("POST", f"{api}/payments", b'{"userId":"test","amount":100,"currency":"XAF"}')
                for _ in range(10)]
    assert [s for s, _, _ in statuses] == [201] * 5 + [429] * 5
    assert statuses[-1][2] == {"error": "Rate limit exceeded. Try again later."}
    assert statuses[-1][1]["Retry-After"] and statuses[-1][1]["RateLimit-Policy"] == '"default";q=5;w=60'


def test_the_readmes_quick_start_prints_what_it_promises(redis, api, launch, tmp_path):  # redis: emptied
    launch("paypoc_worker.py", processing_delay=0.5)
    (post, posted), (get, got), (loop, statuses) = quick_start_steps()
    answer = run(post, api, tmp_path / "payment.json")
    assert promised(answer, posted), answer
    payment_id = json.loads(answer)["data"]["id"]
    assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "COMPLETED")
    answer = run(get, api, tmp_path / "payment.json")
    assert promised(answer, got) and json.loads(answer)["id"] == payment_id, answer
    assert promised(run(loop, api), statuses) and statuses == " ".join(["201"] * 5 + ["429"] * 5)
    assert run(loop, api).split() == ["429"] * 10  # again at once, as the README warns


def test_a_head_request_leaves_the_connection_ready_for_the_next_request(api):
    connection = HTTPConnection(api.removeprefix("http://"), timeout=5)
    connection.request("HEAD", "/health")
    head = connection.getresponse()
    assert (head.status, head.read(), head.getheader("Content-Length")) == (200, b"", "16")
    connection.request("GET", "/health")  # the same connection: no stray body may be waiting on it
    get = connection.getresponse()
    assert (get.status, json.loads(get.read())) == (200, {"status": "OK"})
    connection.close()


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
    payment_id = http("POST", f"{api}/payments", WALKTHROUGH_POST)[2]["data"]["id"]
    assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "PROCESSING")
    assert worker.stop(signal.SIGTERM, timeout=1.5 + 5) == 0  # within PROCESSING_DELAY + 5 s
    assert http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "COMPLETED"


def test_a_second_signal_exits_at_once_and_the_next_worker_finishes_the_job(api, launch):
    worker = launch("paypoc_worker.py", processing_delay=30)
    payment_id = http("POST", f"{api}/payments", WALKTHROUGH_POST)[2]["data"]["id"]
    assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "PROCESSING")
    worker.popen.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert worker.stop(signal.SIGINT, timeout=5) != 0  # not the 30 s it would take to finish
    # Not PROCESSING forever: beanstalkd hands the job on and the next worker takes it over.
    launch("paypoc_worker.py", processing_delay=0)
    assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "COMPLETED")


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


@pytest.mark.parametrize("name, value", [("LOG_LEVEL", "ınfo"), ("PROCESSING_DELAY", "３"), ("RETRY_DELAY", "1_0")])
def test_settings_accept_plain_ascii_only(name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})
