"""The shared Redis client: stale connections replaced, stalls cut short by the timeout, scripts
reloaded, and Redis's refusals told from wrong commands."""

import os
import signal

import pytest
import redis as redis_py

from lib.devtools.local_servers import free_port, local_redis
from lib.devtools.processes import wait_for
from lib.store.redis_client import open_redis
from lib.store.redis_errors import (
    REDIS_DOWN_ERRORS,
    REFUSALS,
    describe,
    redis_unavailable,
    refusal,
)


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


def error_of(call):
    """The exception call() raises."""
    with pytest.raises(redis_py.RedisError) as raised:
        call()
    return raised.value


def test_a_refusal_is_told_by_its_code_alone_or_in_a_pipeline(own_servers):
    client = open_redis(f"redis://127.0.0.1:{own_servers['redis'].port}/0")
    client.config_set("min-replicas-to-write", 1)  # and no replica: every write is refused
    alone = error_of(lambda: client.set("k", "v"))
    in_a_pipeline = error_of(lambda: client.pipeline(transaction=False).get("k").set("k", "v").execute())
    assert str(alone).startswith("NOREPLICAS") and "of pipeline caused error: NOREPLICAS" in str(in_a_pipeline)
    for error in (alone, in_a_pipeline):
        assert refusal(error) == REFUSALS["NOREPLICAS"] and redis_unavailable(error)
    assert describe(alone).startswith("too few of its replicas answer, so it refuses writes: NOREPLICAS")
    assert client.get("k") is None  # reads still served


def test_a_replica_that_lost_its_primary_refuses_reads_too(own_servers, tmp_path):
    replica = local_redis(free_port(), tmp_path, tmp_path / "replica.log", "", "--replicaof", "127.0.0.1",
                          str(own_servers["redis"].port), "--replica-serve-stale-data", "no").start()
    try:
        client = open_redis(f"redis://127.0.0.1:{replica.port}/0")
        assert wait_for(lambda: client.info("replication")["master_link_status"] == "up")
        own_servers["redis"].stop()
        assert wait_for(lambda: client.info("replication")["master_link_status"] == "down")
        error = error_of(lambda: client.get("k"))
        assert refusal(error) == "it is a replica that lost its primary"
    finally:
        replica.stop()


def test_a_wrong_command_is_not_a_refusal(redis):
    redis.set("text", "v")
    wrong = [lambda: redis.hget("text", "field"),  # WRONGTYPE
             lambda: redis.restore("text", 0, redis.dump("text")),  # BUSYKEY: not BUSY, a key in the way
             lambda: redis.evalsha("0" * 40, 0),  # NOSCRIPT
             lambda: redis.execute_command("NO-SUCH-COMMAND"),  # ERR
             lambda: redis.eval("return redis.call('INCR', KEYS[1])", 1, "text")]  # ERR inside a script
    for call in wrong:
        error = error_of(call)
        assert (refusal(error), redis_unavailable(error)) == (None, False), error
