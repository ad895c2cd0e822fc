"""The shared Redis client: one connection per thread, made at the first command, replaced when stale."""

import threading
import time

import pytest

from lib.local_servers import free_port
from lib.redis_client import IDLE_CHECK_AFTER, REDIS_DOWN_ERRORS, open_redis


def in_thread(call):
    """call() run on a new thread; its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join()
    return result[0]


def test_each_thread_keeps_one_connection_of_its_own(redis):
    mine = redis.client_id()
    assert redis.client_id() == mine  # the same connection, command after command
    other = in_thread(lambda: (redis.client_id(), redis.client_id()))
    assert other[0] == other[1] != mine


def test_a_script_runs_on_the_calling_threads_connection(redis):
    # Registered on the main thread, run on another: the last command on the other thread's
    # connection is the script, not the CLIENT ID it sent before it.
    script = redis.register_script("return redis.call('INCR', KEYS[1])")
    script(keys=["runs"])

    def run_there():
        connection_id = redis.client_id()
        script(keys=["runs"])
        return connection_id

    there = in_thread(run_there)
    assert redis.get("runs") == "2"
    assert redis.client_list(client_id=[there])[0]["cmd"] == "evalsha"


def test_nothing_connects_until_the_first_command():
    client = open_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)  # nobody listens there
    client.register_script("return 1")  # what the API and the worker do at start-up
    with pytest.raises(REDIS_DOWN_ERRORS):
        client.ping()


def test_a_connection_the_server_closed_is_replaced_before_the_next_command(redis, redis_server):
    victim = redis.client_id()
    # What a Redis restart does to every connection we hold, done here to just this one.
    in_thread(lambda: redis.client_kill_filter(_id=victim))
    time.sleep(IDLE_CHECK_AFTER * 2)
    assert redis.ping() is True  # no ConnectionError for the dead connection
    assert redis.client_id() != victim
