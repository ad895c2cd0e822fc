"""Worker heartbeats in Redis: where each worker process says it is alive, and who is, as GET /queue shows."""

from lib.store.redis_client import ThreadRedis

WORKERS_KEY = "workers"  # a set of worker ids; each has a hash worker:<id> that expires
EXPIRES_AFTER = 10  # seconds without a beat before a worker counts as gone (killed, not stopped)


def worker_key(worker_id: str) -> str:
    """The Redis key of one worker's heartbeat hash."""
    return f"worker:{worker_id}"


def live_workers(redis: ThreadRedis) -> list[dict]:
    """The workers whose heartbeat has not expired, oldest first; forgets the others."""
    ids = sorted(redis.smembers(WORKERS_KEY))
    with redis.pipeline(transaction=False) as pipe:
        for worker_id in ids:
            pipe.hgetall(worker_key(worker_id))
        beats = pipe.execute()
    gone = [worker_id for worker_id, beat in zip(ids, beats) if not beat]
    if gone:
        redis.srem(WORKERS_KEY, *gone)
    workers = [{**beat, "pid": int(beat["pid"]), "threads": int(beat["threads"]), "jobs_done": int(beat["jobs_done"])}
               for beat in beats if beat]
    return sorted(workers, key=lambda worker: worker["started_at"])
