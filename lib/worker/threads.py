"""The worker's threads: each reserves a job, has lib/worker/jobs.py make its attempt, then
deletes, buries or releases the job; an outage is waited out with a capped backoff."""

import logging
import threading
from collections.abc import Callable

import greenstalk

from lib.runtime.outages import OutageLog
from lib.store.jobqueue import QUEUE_ERRORS, JobAction, connect
from lib.store.redis_client import describe, redis_unavailable
from lib.worker.jobs import BURY, PaymentJobs

log = logging.getLogger("paypoc.worker")

RESERVE_TIMEOUT = 1  # seconds; how often an idle thread looks at the stop event
MIN_BACKOFF, MAX_BACKOFF = 0.5, 5.0  # seconds between reconnection attempts during an outage


class PaymentWorker:
    """Takes payment jobs from one beanstalkd tube, on as many threads as run it, until `stop` is set."""

    def __init__(self, address: tuple, tube: str, jobs: PaymentJobs, stop: threading.Event):
        self.address, self.tube, self.jobs, self.stop = address, tube, jobs, stop
        self._jobs_done = 0
        self._count_lock = threading.Lock()  # `+= 1` from several threads could lose counts

    def jobs_done(self) -> int:
        """Jobs this process has finished (deleted), for the heartbeat and the last log line."""
        return self._jobs_done

    def _handle(self, client, job):
        try:
            disposal = self.jobs.process(job)
        except Exception as error:
            if redis_unavailable(error):
                # Redis (down, or refusing) is the source of truth; without it, give the job back
                # to try again later, and let run() log the outage, once. The same job coming
                # back takes over its own lease, so nothing waits for it to expire.
                try:
                    client.release(job, delay=1)
                except greenstalk.NotFoundError:
                    pass  # beanstalkd handed it on already (its TTR ran out)
                raise
            log.exception("Burying job %d: processing failed unexpectedly", job.id)
            disposal = BURY
        try:
            if disposal.action is JobAction.BURY:
                client.bury(job)
            elif disposal.action is JobAction.RELEASE:
                client.release(job, delay=disposal.delay)
            else:
                client.delete(job)
                with self._count_lock:
                    self._jobs_done += 1
        except greenstalk.NotFoundError:
            # beanstalkd no longer has the job (it restarted, or handed the job on after its
            # TTR): the payment's state is in Redis already, so there is nothing left to do.
            log.info("Job %d is no longer in beanstalkd; nothing to %s", job.id, disposal.action.value)

    def run(self, number: int) -> None:
        """One thread's loop: reserve, process, repeat; reconnect with capped backoff on outages."""
        log.info("Worker #%d started", number)
        client, backoff, outages = None, MIN_BACKOFF, OutageLog(log, f"Worker #{number}")

        def recovered(name):
            nonlocal backoff
            if outages.answered(name):
                backoff = MIN_BACKOFF

        while not self.stop.is_set():
            try:
                if client is None:
                    # The socket timeout must outlast the server-side reserve timeout.
                    client = connect(self.address, self.tube, RESERVE_TIMEOUT + 4, watch=True)
                try:
                    job = client.reserve(timeout=RESERVE_TIMEOUT)
                except greenstalk.TimedOutError:
                    job = None
                recovered("beanstalkd")
                if job is not None:
                    self._handle(client, job)
                    recovered("Redis")
            except Exception as error:
                name = "Redis" if redis_unavailable(error) else \
                    "beanstalkd" if isinstance(error, QUEUE_ERRORS) else None
                if name is None:
                    # A bug must not silently end a thread: log it, pause, and carry on.
                    log.exception("Worker #%d: unexpected error", number)
                    self.stop.wait(MAX_BACKOFF)
                    continue
                outages.failed(name, describe(error))
                if name == "beanstalkd" and client is not None:
                    client.close()
                    client = None
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        if client is not None:
            client.close()
        log.info("Worker #%d stopped", number)


def start_threads(target: Callable[[int], None], count: int, name: str) -> list[threading.Thread]:
    """Start count threads running target(n), numbered from 1 as the original's logs show."""
    threads = [threading.Thread(target=target, args=(n,), name=f"{name}-{n}") for n in range(1, count + 1)]
    for thread in threads:
        thread.start()
    return threads
