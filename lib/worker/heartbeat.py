"""The worker's heartbeat: every few seconds this process writes in Redis that it is alive."""

import logging
import os
import socket
import threading
from collections.abc import Callable

from lib.runtime.clock import utc_now
from lib.store.redis_client import RedisClient
from lib.store.redis_errors import redis_unavailable
from lib.store.workers import remove_heartbeat, write_heartbeat

log = logging.getLogger("paypoc.heartbeat")

BEAT_EVERY = 2.0  # seconds


class Heartbeat:
    """Keeps this process's heartbeat fresh until stopped, then removes it."""

    def __init__(self, redis: RedisClient, threads: int, jobs_done: Callable[[], dict[str, int]],
                 settings: dict[str, float], stop: threading.Event):
        self.redis, self.threads, self.jobs_done, self.stop = redis, threads, jobs_done, stop
        self.settings = settings  # what decides how long a payment takes and how it ends
        self.host = socket.gethostname()  # in a container, the container's id: one per replica
        self.id = f"{self.host}-{os.getpid()}"
        self.started_at = utc_now()

    def beat(self) -> None:
        """Write the heartbeat once: who, how many threads, how much done by outcome, with which settings, when."""
        write_heartbeat(self.redis, {"id": self.id, "host": self.host, "pid": os.getpid(), "threads": self.threads,
                                     "started_at": self.started_at, "last_seen": utc_now()},
                        self.jobs_done(), self.settings)

    def run(self) -> None:
        """Beat every BEAT_EVERY seconds until stop is set; a stopped worker leaves at once."""
        while True:
            try:
                self.beat()
            except Exception as error:  # Redis down or refusing: the worker threads log the outage
                if not redis_unavailable(error):  # a bug must not end the beats: /queue would lose this worker
                    log.exception("Heartbeat: unexpected error")
            if self.stop.wait(BEAT_EVERY):
                break
        try:
            remove_heartbeat(self.redis, self.id)
        except Exception as error:  # the hash expires by itself
            if not redis_unavailable(error):
                raise
