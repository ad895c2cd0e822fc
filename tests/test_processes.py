"""Every core: several API processes serve one port, several worker processes drain one tube, under a
supervisor that replaces the dead, stops them all gently, and leaves no orphan; /metrics adds up."""

import os
import re
import signal
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from lib.devtools.local_servers import free_port
from lib.devtools.processes import http, wait_for
from lib.runtime.config import available_cores
from tests.conftest import WALKTHROUGH_BODY
from tests.faults import FaultProxy


@pytest.fixture
def api_processes(launch):
    """api_processes(count, **settings): a running API of `count` processes; returns (base URL, Process)."""

    def start(count, **settings):
        port = free_port()
        process = launch("paypoc.py", port=port, api_processes=count, **settings)
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: len(serving(process)) == count, timeout=15), process.output()
        return base, process

    return start


def serving(process):
    """{request-id prefix: pid} of every API process that has said it is serving."""
    return {prefix: int(pid) for pid, prefix in
            re.findall(r"API process \d+ of \d+: pid (\d+), request ids ([0-9a-f]+)", process.output())}


def answered_by(base):
    """The request-id prefix, which names the API process that answered a new connection."""
    return http("GET", f"{base}/health")[1]["X-Request-ID"][:16]


def port_free(port):
    """True when nothing listens on port (create_server allows the closed connections' TIME_WAIT)."""
    try:
        socket.create_server(("127.0.0.1", port)).close()
        return True
    except OSError:
        return False


def port_of(base):
    return int(base.rsplit(":", 1)[1])


def test_two_api_processes_share_one_port_and_both_take_requests(api_processes):
    base, process = api_processes(2)
    pids = serving(process)
    assert sorted(pids.values()) == sorted(process.children()) and len(pids) == 2
    seen = set()
    assert wait_for(lambda: seen.add(answered_by(base)) or seen == set(pids), timeout=10), seen


def test_the_default_is_one_api_process_per_core(launch):
    port = free_port()
    process = launch("paypoc.py", port=port)
    assert wait_for(lambda: len(serving(process)) == available_cores(), timeout=15), process.output()


def test_sigterm_answers_the_requests_in_flight_then_ends_every_process(api_processes, redis_server):
    proxy = FaultProxy(redis_server.port)  # holds the answer to one command: a request stays in flight
    try:
        base, process = api_processes(2, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        children = process.children()
        assert http("GET", f"{base}/payments/00000000-0000-4000-8000-000000000000")[0] == 404  # connected
        proxy.arm("late", containing=b"HGETALL", hold=0.5)
        in_flight = ThreadPoolExecutor(1).submit(
            http, "GET", f"{base}/payments/00000000-0000-4000-8000-000000000000")
        assert proxy.fired.wait(5)
        started = time.monotonic()
        process.popen.send_signal(signal.SIGTERM)
        assert in_flight.result(timeout=10)[0] == 404  # answered, not cut
        assert process.popen.wait(10) == 0 and time.monotonic() - started < 10
        assert not any(_alive(pid) for pid in children)
    finally:
        proxy.close()


def test_a_killed_api_process_is_replaced_and_no_request_after_that_fails(api_processes):
    base, process = api_processes(2)
    victim = process.children()[0]
    signal_and_wait(victim, signal.SIGKILL)
    assert wait_for(lambda: len(process.children()) == 2 and victim not in process.children())
    assert "exited with status -9; starting another" in process.output()
    assert wait_for(lambda: len(serving(process)) == 3)  # the replacement said it is serving
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: http("GET", f"{base}/health")[0], range(200)))
    assert statuses == [200] * 200


def test_with_its_parent_killed_every_api_process_stops_and_frees_the_port(api_processes):
    base, process = api_processes(2)
    children = process.children()
    killed = time.monotonic()
    process.stop(signal.SIGKILL)  # the parent only
    assert wait_for(lambda: not any(_alive(pid) for pid in children), timeout=5)
    assert wait_for(lambda: port_free(port_of(base)), timeout=5 - (time.monotonic() - killed))


def test_a_taken_port_is_one_clear_line_and_exit_1(launch):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        process = launch("paypoc.py", port=taken.getsockname()[1])
        assert process.popen.wait(15) == 1
    lines = process.output().strip().splitlines()
    assert len(lines) == 1 and "Cannot listen on 127.0.0.1:" in lines[0] and "Address already in use" in lines[0]


def test_metrics_count_the_requests_every_process_answered(api_processes):
    base, _ = api_processes(2)

    def health_count():
        text = http_text(f"{base}/metrics")
        found = re.search(r'paypoc_http_request_duration_seconds_count\{method="GET",route="/health"\} (\d+)', text)
        return int(found.group(1)) if found else 0

    before = health_count()
    seen = set()
    for _ in range(100):
        seen.add(answered_by(base))  # each a new connection, so both processes answer some
    assert len(seen) == 2
    # Whichever process answers the scrape, the count is everyone's.
    assert [health_count() - before for _ in range(10)] == [100] * 10


def test_worker_processes_each_show_on_queue_and_drain_the_tube_together(api, launch):
    worker = launch("paypoc_worker.py", worker_processes=2, max_workers=2, processing_delay=0.2)
    assert wait_for(lambda: len(http("GET", f"{api}/queue")[2]["workers"]) == 2)
    listed = http("GET", f"{api}/queue")[2]["workers"]
    assert sorted(w["pid"] for w in listed) == sorted(worker.children()) and [w["threads"] for w in listed] == [2, 2]
    ids = [http("POST", f"{api}/payments", {**WALKTHROUGH_BODY, "user_Id": f"u{n}"})[2]["data"]["id"]
           for n in range(8)]
    assert wait_for(lambda: all(http("GET", f"{api}/payments/{i}")[2]["status"] == "COMPLETED" for i in ids),
                    timeout=20)
    # Both processes took jobs.
    assert wait_for(lambda: all(sum(w["jobs_done"].values()) > 0 for w in http("GET", f"{api}/queue")[2]["workers"]))
    assert worker.stop(signal.SIGTERM) == 0
    assert http("GET", f"{api}/queue")[2]["workers"] == []


def http_text(url):
    """The body of a GET as text."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def signal_and_wait(pid, sig):
    os.kill(pid, sig)
    assert wait_for(lambda: not _alive(pid))


def _alive(pid):
    """True while pid runs (a zombie, ended but not yet reaped by its parent, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
