"""The Redis client both processes share: redis-py's own, with short timeouts and no retries."""

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.store.config import DEPENDENCY_TIMEOUT

# Errors that mean Redis is unreachable or stalled (AuthenticationError and BusyLoadingError
# are ConnectionErrors too): the API answers them with 503, the worker waits them out.
REDIS_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def open_redis(url: str, timeout: float = DEPENDENCY_TIMEOUT) -> redis.Redis:
    """A client for url that every thread shares; nothing connects until the first command.

    Its pool lends each command a connection and first checks that the server has not closed
    it (Redis restarted), so a stale connection is replaced instead of failing the request.
    A failed command is never sent again: redis-py would retry it by default, but a timeout
    can come after Redis ran the command, and a payment must not be stored twice.
    """
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def mask_url(url: str) -> str:
    """url with its password replaced by ***, for log lines: redis://:***@redis:6379/0."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def describe(error: Exception) -> str:
    """An error from Redis as a log line should put it: a refused password says so plainly."""
    if isinstance(error, redis.AuthenticationError):
        return f"Redis refused the credentials in REDIS_URL: {error}"
    return str(error)
