"""The worker's threads: each reserves a job, has lib/worker/jobs.py make its attempt, then
deletes, buries or releases the job; an outage is waited out with a capped backoff."""

import logging
import threading
from collections.abc import Callable

import greenstalk

from lib.runtime.outages import OutageLog
from lib.store.jobqueue import QUEUE_ERRORS, JobAction, connect
from lib.store.redis_errors import describe, redis_unavailable
from lib.worker.jobs import UNPROCESSABLE, Outcome, PaymentJobs

log = logging.getLogger("paypoc.worker")

RESERVE_TIMEOUT = 1  # seconds; how often an idle thread looks at the stop event
MIN_BACKOFF, MAX_BACKOFF = 0.5, 5.0  # seconds between reconnection attempts during an outage


def servers_for(number: int, threads: int, addresses: tuple) -> tuple:
    """The beanstalkd that worker thread `number` (from 1) of `threads` reserves from: one each,
    the threads spread evenly over them; with fewer threads than servers, every server still has
    a thread (taking turns with the others it has)."""
    if threads >= len(addresses):
        return (addresses[(number - 1) % len(addresses)],)
    return addresses[number - 1::threads]


class PaymentWorker:
    """Takes payment jobs from a tube on one or several beanstalkd, on `threads` threads, until `stop` is set."""

    def __init__(self, addresses: tuple, tube: str, jobs: PaymentJobs, stop: threading.Event, threads: int):
        self.addresses, self.tube, self.jobs, self.stop, self.threads = addresses, tube, jobs, stop, threads
        self._jobs_done = dict.fromkeys(Outcome, 0)
        self._count_lock = threading.Lock()  # `+= 1` from several threads could lose counts

    def jobs_done(self) -> dict[Outcome, int]:
        """Jobs this process's threads have finished with, by outcome, for the heartbeat and the last log line."""
        with self._count_lock:
            return dict(self._jobs_done)

    def _handle(self, client, job):
        try:
            outcome, disposal = self.jobs.process(job)
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
            outcome, disposal = UNPROCESSABLE
        try:
            if disposal.action is JobAction.BURY:
                client.bury(job)
            elif disposal.action is JobAction.RELEASE:
                client.release(job, delay=disposal.delay)
            else:
                client.delete(job)
        except greenstalk.NotFoundError:
            # beanstalkd no longer has the job (it restarted, or handed the job on after its
            # TTR): the payment's state is in Redis already, so there is nothing left to do.
            log.info("Job %d is no longer in beanstalkd; nothing to %s", job.id, disposal.action.value)
        finally:
            # Counted once the job is dealt with, whatever beanstalkd said: Redis holds the outcome.
            with self._count_lock:
                self._jobs_done[outcome] += 1

    def run(self, number: int) -> None:
        """One thread's loop: reserve from each of its servers in turn, process, repeat; reconnect
        with capped backoff on outages."""
        log.info("Worker #%d started", number)
        servers = servers_for(number, self.threads, self.addresses)
        clients, backoff, outages = {}, MIN_BACKOFF, OutageLog(log, f"Worker #{number}")
        turn = 0
        while not self.stop.is_set():
            address = servers[turn % len(servers)]
            turn += 1
            name = "beanstalkd" if len(self.addresses) == 1 else f"beanstalkd {address[0]}:{address[1]}"
            try:
                if address not in clients:
                    # The socket timeout must outlast the server-side reserve timeout.
                    clients[address] = connect(address, self.tube, RESERVE_TIMEOUT + 4, watch=True)
                try:
                    job = clients[address].reserve(timeout=RESERVE_TIMEOUT)
                except greenstalk.TimedOutError:
                    job = None
                answered = outages.answered(name)
                if job is not None:
                    self._handle(clients[address], job)
                    answered = outages.answered("Redis") or answered
                if answered:
                    backoff = MIN_BACKOFF
            except Exception as error:
                if redis_unavailable(error):
                    outages.failed("Redis", describe(error))
                elif isinstance(error, QUEUE_ERRORS):
                    outages.failed(name, describe(error))
                    client = clients.pop(address, None)
                    if client is not None:
                        client.close()
                else:
                    # A bug must not silently end a thread: log it, pause, and carry on.
                    log.exception("Worker #%d: unexpected error", number)
                    self.stop.wait(MAX_BACKOFF)
                    continue
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        for client in clients.values():
            client.close()
        log.info("Worker #%d stopped", number)


def start_threads(target: Callable[[int], None], count: int, name: str) -> list[threading.Thread]:
    """Start count threads running target(n), numbered from 1 as the original's logs show."""
    threads = [threading.Thread(target=target, args=(n,), name=f"{name}-{n}") for n in range(1, count + 1)]
    for thread in threads:
        thread.start()
    return threads
