"""The round trips each operation makes, as the README's Performance section counts them, held so none creeps back."""

import json
import subprocess
import sys
from collections import Counter

import greenstalk
import pytest

from lib.devtools.local_servers import free_port
from lib.devtools.processes import ROOT, Process, answers, http, wait_for
from lib.store import keys
from lib.store.jobqueue import encode_job
from lib.store.payments import Status
from tests.conftest import WALKTHROUGH_BODY, store_payment

PAYMENT_REDIS_TRIPS = 3  # a payment job's: Attempts.begin, the processor's charge, Attempts.end

# beanstalkd commands not counted: these tests' own reads of its statistics, and reserves (an
# idle worker thread reserves once a second however many jobs it takes).
NOT_COUNTED = {"cmd-stats", "cmd-stats-tube", "cmd-reserve-with-timeout"}
END_OF_COUNT = "end of count"
# What a client sends when it opens a connection: not round trips of the operation counted.
CONNECTION_SET_UP = {"hello", "client", "auth", "select"}


@pytest.fixture
def count_commands(redis, beanstalkd_server):
    """count_commands(action, requests): the commands Redis and beanstalkd received while action
    made that many requests, by name.

    Redis's MONITOR shows every command a client sends, and the ones scripts run marked "lua",
    which are not round trips. A thread's connection that sat idle is pinged before its next
    command (never under load): at most one PING a request, checked here and left out of the count.
    """
    queue = greenstalk.Client(("127.0.0.1", beanstalkd_server.port))

    def beanstalkd_totals():
        return {name: value for name, value in queue.stats().items() if name.startswith("cmd-")}

    def count(action, requests):
        before = beanstalkd_totals()
        with redis.monitor() as monitor:
            action()
            redis.echo(END_OF_COUNT)  # the last command the monitor shows for this action
            redis_calls = Counter()
            while (command := monitor.next_command())["command"] != f"ECHO {END_OF_COUNT}":
                name = command["command"].split()[0].lower()
                if command["client_type"] != "lua" and name not in CONNECTION_SET_UP:
                    redis_calls[name] += 1
        after = beanstalkd_totals()
        queue_calls = {name: after[name] - before[name] for name in after
                       if after[name] != before[name] and name not in NOT_COUNTED}
        assert redis_calls.pop("ping", 0) <= requests
        return dict(redis_calls), queue_calls

    yield count
    queue.close()


def test_a_post_is_one_redis_script_and_one_put(client, count_commands):
    client.post_payment(WALKTHROUGH_BODY)  # the first call loads the script and connects

    def post_three():
        for _ in range(3):
            assert client.post_payment(WALKTHROUGH_BODY)[0] == 201

    assert count_commands(post_three, 3) == ({"evalsha": 3}, {"cmd-put": 3})


def test_a_get_is_one_hgetall(client, redis, count_commands):
    payment_id = store_payment(redis).id
    client.request("GET", f"/payments/{payment_id}")  # the first call connects

    def get_three():
        for _ in range(3):
            assert client.request("GET", f"/payments/{payment_id}")[0] == 200

    assert count_commands(get_three, 3) == ({"hgetall": 3}, {})


def test_the_benchs_get_floor_makes_the_same_hgetall_and_answers_hello(redis, env, count_commands, tmp_path):
    key = keys.payment(store_payment(redis).id)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = Process(["-m", "lib.devtools.bench", "hello", str(port), "2", env["REDIS_URL"], key], {},
                     tmp_path / "hello.log")
    try:
        assert wait_for(lambda: answers(url))  # the first request connects
        replies = []
        assert count_commands(lambda: replies.extend(http("GET", url) for _ in range(3)), 3) == ({"hgetall": 3}, {})
        assert [body for _, _, body in replies] == [{"status": "OK"}] * 3
    finally:
        server.stop()


def test_a_payment_job_is_three_redis_scripts_and_one_delete(client, redis, env, tube, run_worker, count_commands):
    run_worker(max_workers=1)
    client.post_payment(WALKTHROUGH_BODY)  # the worker's first job loads the scripts and connects

    def deleted():
        return tube.stats_tube(env["BEANSTALK_TUBE"])["cmd-delete"]

    assert wait_for(lambda: deleted() == 1)
    stored = [store_payment(redis).id for _ in range(3)]  # stored now, so their writes go uncounted

    def take_three():
        for payment_id in stored:
            tube.put(encode_job(payment_id))
        assert wait_for(lambda: deleted() == 4)  # a job is deleted after its payment's last write

    assert count_commands(take_three, 3) == ({"evalsha": 3 * PAYMENT_REDIS_TRIPS}, {"cmd-put": 3, "cmd-delete": 3})
    assert all(redis.hget(keys.payment(payment_id), "status") == Status.COMPLETED for payment_id in stored)


def test_the_benchs_round_trip_baselines_make_the_redis_calls_they_stand_for(redis, env, beanstalkd_server,
                                                                             count_commands):
    """The bare loop makes none; asked for N, N per job (3 stand for a payment job, 2 for a worker's status changes)."""
    host, port, tube = "127.0.0.1", beanstalkd_server.port, env["BEANSTALK_TUBE"]
    redis.script_load("return 1")  # so every call below is one EVALSHA, none a NOSCRIPT retry
    for trips in (0, PAYMENT_REDIS_TRIPS, 2):
        with greenstalk.Client((host, port), use=tube) as producer:
            for _ in range(20):
                producer.put(encode_job("00000000-0000-4000-8000-000000000000"))
        command = [sys.executable, "-m", "lib.devtools.bench", "raw-drain", host, str(port), tube, "2"]
        command += [env["REDIS_URL"], str(trips)] if trips else []
        outputs = []
        redis_calls, _ = count_commands(lambda: outputs.append(
            subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout), 20)
        assert json.loads(outputs[0])["jobs"] == 20
        assert redis_calls.get("evalsha", 0) == 20 * trips
