"""Which of Redis's errors mean that it cannot serve now (down, stalled, or refusing), and in what
words; any other error is a bug."""

import redis
from redis import exceptions

# Errors that mean Redis is unreachable or stalled (AuthenticationError and BusyLoadingError
# are ConnectionErrors too): the API answers them with 503, the worker waits them out. A
# command may or may not have run when its answer did not come back. On a cluster, a slot whose
# master is gone and not replaced yet is served by nobody for a moment.
REDIS_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError, exceptions.SlotNotCoveredError)

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

class NotReplicated(redis.TimeoutError):
    """Redis ran a write, but too few replicas had it within the time allowed (WAIT): a failover
    now could lose it, so its outcome is as unknown as after a timeout."""



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
    if isinstance(error, exceptions.RedisClusterException) and isinstance(error.__cause__, REDIS_DOWN_ERRORS):
        # No node of a cluster answered when the client asked for its layout (at the first
        # command, or after losing a node): redis-py raises this, from the error underneath.
        return True
    return isinstance(error, REDIS_DOWN_ERRORS) or refusal(error) is not None


def describe(error: Exception) -> str:
    """An error from Redis as a log line should put it: a refused password or a refusal says so plainly."""
    if isinstance(error, redis.AuthenticationError):
        return f"Redis refused the credentials in REDIS_URL: {error}"
    if cause := refusal(error):
        return f"{cause}: {error}"
    return str(error)
