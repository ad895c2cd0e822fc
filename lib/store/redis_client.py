"""The Redis client of a process: redis-py's, a connection per thread, short timeouts and no retries;
and which of its errors mean that Redis cannot serve now."""

import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis import exceptions
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from lib.runtime.config import DEPENDENCY_TIMEOUT

# Errors that mean Redis is unreachable or stalled (AuthenticationError and BusyLoadingError
# are ConnectionErrors too): the API answers them with 503, the worker waits them out. A
# command may or may not have run when its answer did not come back.
REDIS_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError)

# Redis's refusals: it answered, but cannot take the command now. The first word of an error
# reply is its code; these codes mean "not now", and the API and the worker treat them as an
# outage. Any other code (ERR, WRONGTYPE, NOSCRIPT...) means the command itself is wrong: a
# bug, answered 500. A refused command changed nothing: Redis refuses a command before it
# runs, and a script at its first write (once a script has written, Redis lets it finish).
REFUSALS = {
    "OOM": "it is out of memory and refuses writes",
    "MISCONF": "it cannot save to disk and refuses writes",
    "READONLY": "it is a read-only replica and refuses writes",
    "NOREPLICAS": "too few of its replicas answer, so it refuses writes",
    "LOADING": "it is loading its data",
    "MASTERDOWN": "it is a replica that lost its primary",
    "BUSY": "it is busy running a script",
    "TRYAGAIN": "it is moving keys between its nodes",
    "CLUSTERDOWN": "its cluster is down",
}
# redis-py raises these codes as exceptions of their own, their messages without the code.
_CODE_OF = [(exceptions.OutOfMemoryError, "OOM"), (exceptions.ReadOnlyError, "READONLY"),
            (exceptions.BusyLoadingError, "LOADING"), (exceptions.MasterDownError, "MASTERDOWN"),
            (exceptions.ClusterDownError, "CLUSTERDOWN"), (exceptions.TryAgainError, "TRYAGAIN")]

# GET /ready's question, "could a payment be stored now?", asked without storing anything: a
# script whose first line declares flags (Redis 7; none declared: it may write) is refused up
# front by a Redis that refuses writes, where PING would get PONG from one out of memory.
WRITE_CHECK_LUA = "#!lua\nreturn 1"

# A connection unused for longer is pinged before its next command. Under load a thread's
# connection is never idle this long; and no Redis restarts (closing it) that quickly. The cost:
# at low traffic (make demo) every command comes after a pause, so it makes two round trips.
IDLE_CHECK_AFTER = 0.01  # seconds


def open_redis(url: str, timeout: float = DEPENDENCY_TIMEOUT) -> "ThreadRedis":
    """A client for url that every thread may use; nothing connects until the first command.

    A failed command is never sent again: redis-py would retry it by default, but a timeout
    can come after Redis ran the command, and a payment must not be stored twice.
    """
    return ThreadRedis(redis.ConnectionPool.from_url(url, decode_responses=True, socket_timeout=timeout,
                                                     socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)))


class ThreadRedis:
    """A redis-py client per thread, each keeping one connection of a shared pool for its life.

    A shared client takes a connection out of its pool and puts it back for every command, which
    under load costs more than many commands (about 7 % of a POST or a GET, measured beside a
    stock client). So each thread gets a client that keeps one (single_connection_client), and
    pings it first after a pause, so that a connection a Redis restart closed is replaced
    before a command goes out on it. redis-py's own health_check_interval would send that
    ping too, but through the client's retry policy: with no retries (see open_redis) a failed
    ping fails the command. A service with little traffic is better served by the stock
    client, whose pool checks each connection before use without a round trip.
    """

    def __init__(self, pool: redis.ConnectionPool):
        self.connection_pool = pool
        self._local = threading.local()

    def client(self) -> redis.Redis:
        """This thread's client; made at the thread's first command, checked after a pause."""
        local, now = self._local, time.monotonic()
        client = getattr(local, "client", None)
        if client is not None and now - local.used > IDLE_CHECK_AFTER:
            try:
                client.ping()
            except redis.ConnectionError:  # closed by the server: a new connection, below
                client.close()
                client = None
            except redis.ResponseError:
                pass  # refused (PING is, while Redis cannot save): an answer, so the connection is alive
        if client is None:
            client = local.client = redis.Redis(connection_pool=self.connection_pool, single_connection_client=True)
        local.used = now
        return client

    def register_script(self, text: str) -> "ThreadScript":
        """A Lua script that runs on the calling thread's client."""
        return ThreadScript(redis.Redis(connection_pool=self.connection_pool).register_script(text), self)

    def __getattr__(self, command: str) -> Any:
        return getattr(self.client(), command)  # every command: this thread's client


class ThreadScript:
    """redis-py's Script, run on the calling thread's client: script(keys=[...], args=[...])."""

    def __init__(self, script: Script, redis_client: ThreadRedis):
        self.script, self.sha, self._redis = script, script.sha, redis_client

    def __call__(self, keys: Sequence = (), args: Sequence = ()) -> Any:
        return self.script(keys=keys, args=args, client=self._redis.client())


def refusal(error: Exception) -> str | None:
    """What Redis's refusal means, in words ("it is out of memory and refuses writes"), or None
    when error is not a refusal."""
    for kind, code in _CODE_OF:
        if isinstance(error, kind):
            return REFUSALS[code]
    if isinstance(error, redis.ResponseError):
        # The reply's first word is its code. redis-py puts "Command # 1 (HSET ...) of pipeline
        # caused error: " before the reply to a command in a pipeline.
        reply = str(error).rpartition(" of pipeline caused error: ")[2]
        return REFUSALS.get(reply.split(" ", 1)[0])
    return None


def redis_unavailable(error: Exception) -> bool:
    """True when error means Redis cannot serve now (down, stalled or refusing), not a bug."""
    return isinstance(error, REDIS_DOWN_ERRORS) or refusal(error) is not None


def describe(error: Exception) -> str:
    """An error from Redis as a log line should put it: a refused password or a refusal says so plainly."""
    if isinstance(error, redis.AuthenticationError):
        return f"Redis refused the credentials in REDIS_URL: {error}"
    if cause := refusal(error):
        return f"{cause}: {error}"
    return str(error)
