"""Worker heartbeats in Redis: each worker process says it is alive, and GET /queue lists who is."""

import json

from lib.store import keys
from lib.store.redis_client import RedisClient

EXPIRES_AFTER = 10  # seconds without a beat before a worker counts as gone (killed, not stopped)
# A heartbeat is one flat hash, so that `redis-cli HGETALL worker:<id>` reads it; these prefixes
# group its counts and settings again for GET /queue.
JOBS, SETTING = "jobs_", "setting_"


def write_heartbeat(redis: RedisClient, beat: dict[str, object], jobs_done: dict[str, int],
                    settings: dict[str, float]) -> None:
    """Say that the worker beat["id"] is alive, as beat describes it, with its jobs done by
    outcome and the settings it runs with, for EXPIRES_AFTER seconds."""
    key = keys.worker(beat["id"])
    mapping = {**beat, **{JOBS + outcome: count for outcome, count in jobs_done.items()},
               **{SETTING + name: json.dumps(value) for name, value in settings.items()}}
    with redis.pipeline() as pipe:
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, EXPIRES_AFTER)
        pipe.sadd(keys.workers(), beat["id"])
        pipe.execute()


def remove_heartbeat(redis: RedisClient, worker_id: str) -> None:
    """Say that the worker has stopped."""
    redis.delete(keys.worker(worker_id))
    redis.srem(keys.workers(), worker_id)


def _worker(beat):
    """A heartbeat hash as GET /queue shows it: counts and settings grouped, numbers as numbers."""
    worker = {name: value for name, value in beat.items() if not name.startswith((JOBS, SETTING))}
    worker.update(pid=int(beat["pid"]), threads=int(beat["threads"]))
    worker["jobs_done"] = {name.removeprefix(JOBS): int(value) for name, value in beat.items()
                           if name.startswith(JOBS)}
    worker["settings"] = {name.removeprefix(SETTING): json.loads(value) for name, value in beat.items()
                          if name.startswith(SETTING)}
    return worker


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
    return sorted((_worker(beat) for beat in beats if beat), key=lambda worker: worker["started_at"])
