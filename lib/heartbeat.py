"""Worker heartbeats in Redis: each worker process says every few seconds that it is alive."""

import logging
import os
import socket

from lib.payments import utc_now
from lib.redis_client import REDIS_DOWN_ERRORS

log = logging.getLogger("paypoc.worker")

WORKERS_KEY = "workers"  # a set of worker ids; each has a hash worker:<id> that expires
BEAT_EVERY = 2.0  # seconds
EXPIRES_AFTER = 10  # seconds without a beat before a worker counts as gone (killed, not stopped)


def worker_key(worker_id):
    """The Redis key of one worker's heartbeat hash."""
    return f"worker:{worker_id}"


class Heartbeat:
    """Keeps this process's worker:<id> hash fresh until stopped, then removes it."""

    def __init__(self, redis, threads, jobs_done, stop):
        self.redis, self.threads, self.jobs_done, self.stop = redis, threads, jobs_done, stop
        self.host = socket.gethostname()  # in a container, the container's id: one per replica
        self.id = f"{self.host}-{os.getpid()}"
        self.started_at = utc_now()

    def beat(self):
        """Write the heartbeat once: who, how many threads, how much done, when."""
        key = worker_key(self.id)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"id": self.id, "host": self.host, "pid": os.getpid(), "threads": self.threads,
                                    "jobs_done": self.jobs_done(), "started_at": self.started_at,
                                    "last_seen": utc_now()})
            pipe.expire(key, EXPIRES_AFTER)
            pipe.sadd(WORKERS_KEY, self.id)
            pipe.execute()

    def run(self):
        """Beat every BEAT_EVERY seconds until stop is set; a stopped worker leaves at once."""
        while True:
            try:
                self.beat()
            except REDIS_DOWN_ERRORS:
                pass  # the worker threads log the outage; the next beat will say we are alive
            if self.stop.wait(BEAT_EVERY):
                break
        try:
            self.redis.delete(worker_key(self.id))
            self.redis.srem(WORKERS_KEY, self.id)
        except REDIS_DOWN_ERRORS:
            pass  # the hash expires by itself


def live_workers(redis):
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
