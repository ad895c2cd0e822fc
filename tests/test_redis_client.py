"""The shared Redis client: stale connections replaced, stalls cut short by the timeout, scripts reloaded."""

import os
import signal

import pytest
import redis as redis_py

from lib.devtools.local_servers import free_port, local_redis
from lib.store.redis_client import REDIS_DOWN_ERRORS, open_redis


def test_a_script_redis_has_forgotten_is_loaded_again_and_run(redis):
    script = redis.register_script("return redis.call('INCR', KEYS[1])")
    assert script(keys=["runs"]) == 1  # the first call loads it
    redis.script_flush()  # what a Redis restart does to every script it knew
    assert redis.script_exists(script.sha) == [False]
    assert script(keys=["runs"]) == 2
    assert redis.script_exists(script.sha) == [True]


def test_nothing_connects_until_the_first_command():
    client = open_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)  # nobody listens there
    client.register_script("return 1")  # what the API and the worker do at start-up
    with pytest.raises(REDIS_DOWN_ERRORS):
        client.ping()


def test_connections_a_restart_closed_are_replaced_before_the_next_command(own_servers):
    client = open_redis(f"redis://127.0.0.1:{own_servers['redis'].port}/0")
    first = client.client_id()
    own_servers["redis"].stop()
    own_servers["redis"].start()  # every connection the client kept is closed now
    assert client.ping() is True  # no ConnectionError for the dead connection
    assert client.client_id() != first


def test_a_stalled_redis_is_a_timeout_and_the_next_command_reconnects(own_servers):
    client = open_redis(f"redis://127.0.0.1:{own_servers['redis'].port}/0", timeout=0.3)
    assert client.ping() is True
    pid = own_servers["redis"].process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(redis_py.TimeoutError):
            client.ping()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert client.ping() is True


def test_a_unix_socket_url_works_too(tmp_path):
    path, port = tmp_path / "redis.sock", free_port()
    server = local_redis(port, tmp_path, os.devnull, "", "--unixsocket", str(path)).start()
    try:
        assert open_redis(f"unix://{path}", timeout=0.5).ping() is True
    finally:
        server.stop()
