"""The round trips each operation makes, as the README's Performance section counts them, held so none creeps back."""

import json
from collections import Counter
from wsgiref.util import setup_testing_defaults

import greenstalk
import pytest

from lib.jobqueue import encode_job
from lib.payments import COMPLETED, payment_key
from tests.bench_http import hello_after_round_trip
from tests.bench_worker import PAYMENT_REDIS_TRIPS, STATUS_CHANGE_TRIPS, fill_tube, raw_drain
from tests.conftest import SEED_PAYMENT, store_payment
from tests.processes import wait_for

# beanstalkd commands not counted: these tests' own reads of its statistics, and reserves (an
# idle worker thread reserves once a second however many jobs it takes).
NOT_COUNTED = {"cmd-stats", "cmd-stats-tube", "cmd-reserve-with-timeout"}
END_OF_COUNT = "end of count"
# What a client sends when it opens a connection, not a round trip of the operation counted.
CONNECTION_SET_UP = {"hello", "client", "auth", "select"}


@pytest.fixture
def count_commands(redis, beanstalkd_server):
    """count_commands(action): the commands Redis and beanstalkd received while action ran, by name.

    Redis's MONITOR shows every command a client sends, and the ones scripts run marked "lua",
    which are not round trips.
    """
    queue = greenstalk.Client(("127.0.0.1", beanstalkd_server.port))

    def beanstalkd_totals():
        return {name: value for name, value in queue.stats().items() if name.startswith("cmd-")}

    def count(action):
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
        return dict(redis_calls), queue_calls

    yield count
    queue.close()


def test_a_post_is_one_redis_script_and_one_put(client, count_commands):
    client.post_payment(SEED_PAYMENT)  # the first call loads the script and connects

    def post_three():
        for _ in range(3):
            assert client.post_payment(SEED_PAYMENT)[0] == 201

    assert count_commands(post_three) == ({"evalsha": 3}, {"cmd-put": 3})


def test_a_get_is_one_hgetall(client, redis, count_commands):
    payment_id = store_payment(redis)["id"]
    client.request("GET", f"/payments/{payment_id}")  # the first call connects

    def get_three():
        for _ in range(3):
            assert client.request("GET", f"/payments/{payment_id}")[0] == 200

    assert count_commands(get_three) == ({"hgetall": 3}, {})


def test_the_benchs_get_floor_makes_the_same_hgetall_and_answers_hello(redis, count_commands):
    key = payment_key(store_payment(redis)["id"])
    app = hello_after_round_trip(redis, key)
    answers = []

    def get_three():
        for _ in range(3):
            environ = {}
            setup_testing_defaults(environ)
            answers.append(b"".join(app(environ, lambda status, headers: None)))

    assert count_commands(get_three) == ({"hgetall": 3}, {})
    assert answers == [b'{"status":"OK"}\n'] * 3


def test_a_payment_job_is_three_redis_scripts_and_one_delete(client, redis, env, tube, run_worker, count_commands):
    run_worker(max_workers=1)
    client.post_payment(SEED_PAYMENT)  # the worker's first job loads the scripts and connects

    def deleted():
        return tube.stats_tube(env["BEANSTALK_TUBE"])["cmd-delete"]

    assert wait_for(lambda: deleted() == 1)
    stored = [store_payment(redis)["id"] for _ in range(3)]  # stored now, so their writes go uncounted

    def take_three():
        for payment_id in stored:
            tube.put(encode_job(payment_id))
        assert wait_for(lambda: deleted() == 4)  # a job is deleted after its payment's last write

    assert count_commands(take_three) == ({"evalsha": 3 * PAYMENT_REDIS_TRIPS}, {"cmd-put": 3, "cmd-delete": 3})
    assert all(redis.hget(f"payment:{payment_id}", "status") == COMPLETED for payment_id in stored)


def test_the_benchs_round_trip_baselines_make_the_redis_calls_they_stand_for(redis, env, beanstalkd_server,
                                                                             count_commands, capsys):
    """The bare loop makes none; by default a payment job's; asked for two, a worker's two status changes."""
    address, tube = ("127.0.0.1", beanstalkd_server.port), env["BEANSTALK_TUBE"]
    redis.script_load("return 1")  # so every call below is one EVALSHA, none a NOSCRIPT retry
    for options, trips in (({}, 0), ({"redis_url": env["REDIS_URL"]}, PAYMENT_REDIS_TRIPS),
                           ({"redis_url": env["REDIS_URL"], "redis_trips": STATUS_CHANGE_TRIPS}, 2)):
        fill_tube(address, tube, 20)
        redis_calls, _ = count_commands(lambda: raw_drain(*address, tube, 2, **options))
        assert json.loads(capsys.readouterr().out)["jobs"] == 20
        assert redis_calls.get("evalsha", 0) == 20 * trips  # besides each new connection's HELLO
