"""Worker heartbeats in Redis: each worker process says it is alive, and GET /queue lists who is."""

from lib.store import keys
from lib.store.redis_client import RedisClient

EXPIRES_AFTER = 10  # seconds without a beat before a worker counts as gone (killed, not stopped)


def write_heartbeat(redis: RedisClient, beat: dict[str, object]) -> None:
    """Say that the worker beat["id"] is alive, as beat describes it, for EXPIRES_AFTER seconds."""
    key = keys.worker(beat["id"])
    with redis.pipeline() as pipe:
        pipe.hset(key, mapping=beat)
        pipe.expire(key, EXPIRES_AFTER)
        pipe.sadd(keys.workers(), beat["id"])
        pipe.execute()


def remove_heartbeat(redis: RedisClient, worker_id: str) -> None:
    """Say that the worker has stopped."""
    redis.delete(keys.worker(worker_id))
    redis.srem(keys.workers(), worker_id)


def live_workers(redis: RedisClient) -> list[dict]:
    """The workers whose heartbeat has not expired, oldest first; forgets the others."""
    ids = sorted(redis.smembers(keys.workers()))
    with redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(keys.worker(worker_id))
        beats = pipe.execute()
    gone = [worker_id for worker_id, beat in zip(ids, beats) if not beat]
    if gone:
        redis.srem(keys.workers(), *gone)
    workers = [{**beat, "pid": int(beat["pid"]), "threads": int(beat["threads"]), "jobs_done": int(beat["jobs_done"])}
               for beat in beats if beat]
    return sorted(workers, key=lambda worker: worker["started_at"])
