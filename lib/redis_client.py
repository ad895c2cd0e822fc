"""The Redis client both processes share: timeouts and no retries, so an outage fails fast."""

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Errors that mean Redis is unreachable or stalled (AuthenticationError and BusyLoadingError
# are ConnectionErrors too): the API answers them with 503, the worker waits them out.
REDIS_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def open_redis(url, timeout=1.0):
    """A redis-py client for url; nothing connects until the first command.

    redis-py's default is to retry a failed command several times with backoff, which turns
    one outage into a multi-second hang; the API must answer 503 within 2 s instead.
    """
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def mask_url(url):
    """url with its password replaced by ***, for log lines: redis://:***@redis:6379/0."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def describe(error):
    """An error from Redis as a log line should put it: a refused password says so plainly."""
    if isinstance(error, redis.AuthenticationError):
        return f"Redis refused the credentials in REDIS_URL: {error}"
    return str(error)
