"""The Redis client both processes share: timeouts and no retries, so an outage fails fast."""

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
