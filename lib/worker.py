"""The worker: MAX_WORKERS threads, each reserving jobs and moving payments to COMPLETED."""

import logging
import threading
import time

import greenstalk

from lib.jobqueue import QUEUE_ERRORS, connect, decode_job
from lib.payments import COMPLETED, FAILED, PENDING, PROCESSING
from lib.redis_client import REDIS_DOWN_ERRORS

log = logging.getLogger("paypoc.worker")

RESERVE_TIMEOUT = 1  # seconds; how often an idle thread looks at the stop event
MAX_BACKOFF = 5.0  # seconds between reconnection attempts during an outage


class PaymentWorker:
    """Processes payment jobs from one beanstalkd tube until `stop` is set."""

    def __init__(self, config, payments, stop):
        self.address, self.tube = config.beanstalk_addr, config.beanstalk_tube
        self.processing_delay = config.processing_delay
        self.payments = payments
        self.stop = stop
        self.jobs_done = 0

    def process(self, job):
        """Take one job's payment from PENDING through PROCESSING to COMPLETED.

        Returns what to do with the job: "delete" (done, or nothing left to do) or "bury"
        (a job nobody can process: kept aside for a person to look at).
        """
        try:
            payment_id = decode_job(job.body)
        except ValueError as error:
            log.error("Burying job %d: cannot read its body (%s): %r", job.id, error, job.body[:200])
            return "bury"
        payment = self.payments.get(payment_id)
        if payment is None:
            log.error("Burying job %d: no payment with ID %s", job.id, payment_id)
            return "bury"
        found = self.payments.set_status(payment_id, PENDING, PROCESSING)
        if found in (COMPLETED, FAILED):
            log.info("Payment %s is already %s; dropping the duplicate job %d", payment_id, found, job.id)
            return "delete"
        # found is PENDING (we moved it) or PROCESSING (a worker died holding this job and
        # beanstalkd handed it on after its TTR): either way, this job is now ours to finish.
        log.info("Processing payment ID: %s for user %s amount: %s %s",
                 payment_id, payment["user_id"], payment["amount"], payment["currency"])
        time.sleep(self.processing_delay)  # the simulated processor; a stop lets it finish
        found = self.payments.set_status(payment_id, PROCESSING, COMPLETED)
        if found != PROCESSING:
            log.warning("Payment %s was %s, not PROCESSING, when it finished; left as it was", payment_id, found)
            return "delete"
        log.info("Payment %s processed successfully", payment_id)
        return "delete"

    def _handle(self, client, job):
        try:
            action = self.process(job)
        except REDIS_DOWN_ERRORS as error:
            # Redis is the source of truth; without it, give the job back to try again later.
            log.warning("Releasing job %d: Redis is unavailable (%s)", job.id, error)
            client.release(job, delay=1)
            raise
        except Exception:
            log.exception("Burying job %d: processing failed unexpectedly", job.id)
            action = "bury"
        if action == "bury":
            client.bury(job)
        else:
            client.delete(job)
            self.jobs_done += 1

    def run(self, number):
        """One thread's loop: reserve, process, repeat; reconnect with capped backoff on outages."""
        log.info("Worker #%d started", number)
        client, backoff, down = None, 0.5, set()

        def recovered(name):
            nonlocal backoff
            if name in down:
                down.discard(name)
                backoff = 0.5
                log.info("Worker #%d: %s is back", number, name)

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
            except (*QUEUE_ERRORS, *REDIS_DOWN_ERRORS, AssertionError) as error:
                # greenstalk checks reply framing with assert, so a cut connection can raise it.
                name = "Redis" if isinstance(error, REDIS_DOWN_ERRORS) else "beanstalkd"
                if name not in down:  # one line per outage, not one per attempt
                    log.warning("Worker #%d: %s is unavailable (%s); retrying", number, name, error)
                    down.add(name)
                if name == "beanstalkd" and client is not None:
                    client.close()
                    client = None
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:
                # A bug must not silently end a thread: log it, pause, and carry on.
                log.exception("Worker #%d: unexpected error", number)
                self.stop.wait(MAX_BACKOFF)
        if client is not None:
            client.close()
        log.info("Worker #%d stopped", number)


def start_workers(worker, count):
    """Start count threads running worker.run, numbered from 1 as the seed's logs show."""
    threads = [threading.Thread(target=worker.run, args=(n,), name=f"worker-{n}") for n in range(1, count + 1)]
    for thread in threads:
        thread.start()
    return threads
