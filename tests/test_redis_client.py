"""The shared Redis client: a connection per thread, made at the first command, replaced when stale,
with timeouts the kernel keeps."""

import os
import signal
import socket
import threading
import time

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from lib.local_servers import LocalServer, free_port, redis_command
from lib.redis_client import IDLE_CHECK_AFTER, REDIS_DOWN_ERRORS, open_redis
from lib.socket_timeouts import DEPENDENCY_TIMEOUT
from tests.test_socket_timeouts import kernel_timeout


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


def test_a_connection_the_server_closed_is_replaced_before_the_next_command(redis, redis_server):
    victim = redis.client_id()
    # What a Redis restart does to every connection we hold, done here to just this one.
    in_thread(lambda: redis.client_kill_filter(_id=victim))
    time.sleep(IDLE_CHECK_AFTER * 2)
    assert redis.ping() is True  # no ConnectionError for the dead connection
    assert redis.client_id() != victim


def test_a_stalled_redis_is_a_timeout_and_the_next_command_reconnects(own_servers):
    client = open_redis(f"redis://127.0.0.1:{own_servers['redis'].port}/0", timeout=0.3)
    assert client.ping() is True
    pid = own_servers["redis"].process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(RedisTimeoutError, match="did not answer within 0.3 s"):
            client.ping()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert client.ping() is True


def test_tcp_connections_wait_in_the_kernel_not_in_poll(redis, redis_server):
    redis.ping()
    sock = redis.client().connection._sock
    assert sock.gettimeout() is None  # blocking: no poll() before each read and write
    assert kernel_timeout(sock, socket.SO_RCVTIMEO) == kernel_timeout(sock, socket.SO_SNDTIMEO) == DEPENDENCY_TIMEOUT


def test_unix_socket_urls_keep_pythons_timeouts(tmp_path):
    path, port = tmp_path / "redis.sock", free_port()
    server = LocalServer("redis", port, [*redis_command(port, str(tmp_path)), "--unixsocket", str(path)]).start()
    try:
        client = open_redis(f"unix://{path}", timeout=0.5)
        assert client.ping() is True
        assert client.client().connection._sock.gettimeout() == 0.5
    finally:
        server.stop()
