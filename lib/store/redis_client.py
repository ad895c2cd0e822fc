"""The Redis client of a process: redis-py's, a connection per thread, short timeouts and no retries."""

import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from lib.runtime.config import DEPENDENCY_TIMEOUT

# Errors that mean Redis is unreachable or stalled (AuthenticationError and BusyLoadingError
# are ConnectionErrors too): the API answers them with 503, the worker waits them out.
REDIS_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError)
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


def describe(error: Exception) -> str:
    """An error from Redis as a log line should put it: a refused password says so plainly."""
    if isinstance(error, redis.AuthenticationError):
        return f"Redis refused the credentials in REDIS_URL: {error}"
    return str(error)
