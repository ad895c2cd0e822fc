"""The worker: MAX_WORKERS threads, each reserving jobs and taking payments to COMPLETED or FAILED."""

import logging
import math
import random
import threading

import greenstalk

from lib.attempts import EXHAUSTED, MISSING, STARTED
from lib.jobqueue import QUEUE_ERRORS, connect, decode_job
from lib.payments import COMPLETED, FAILED, PENDING
from lib.processor import ChargeDeclined
from lib.redis_client import REDIS_DOWN_ERRORS, describe

log = logging.getLogger("paypoc.worker")

RESERVE_TIMEOUT = 1  # seconds; how often an idle thread looks at the stop event
MAX_BACKOFF = 5.0  # seconds between reconnection attempts during an outage


def retry_delay(base, attempt, rng=random):
    """Whole seconds before attempt+1: base * 2^(attempt-1), the upper half of it at random.

    The jitter spreads out retries of payments that failed together; beanstalkd counts
    delays in whole seconds, so the value is rounded up.
    """
    ceiling = base * 2 ** (attempt - 1)
    return math.ceil(rng.uniform(ceiling / 2, ceiling))


def failure_reason(attempts: int, crashes: int, declined: str | None) -> str:
    """Why a payment failed: the processor's reason when every attempt was declined, else how
    many attempts crashed (never finished) and how many were declined."""
    if crashes == 0 and declined:
        return declined
    counts = [f"{crashes} crashed"] + ([f"{attempts - crashes} declined"] if attempts > crashes else [])
    return f"{attempts} attempts did not finish: {', '.join(counts)}" + (f" ({declined})" if declined else "")


class PaymentWorker:
    """Processes payment jobs from one beanstalkd tube until `stop` is set."""

    def __init__(self, config, attempts, processor, stop):
        self.address, self.tube = config.beanstalk_addr, config.beanstalk_tube
        self.max_attempts, self.retry_base = config.max_attempts, config.retry_delay
        self.attempts, self.processor = attempts, processor
        self.stop = stop
        self._jobs_done = 0
        self._count_lock = threading.Lock()  # `+= 1` from several threads could lose counts

    def jobs_done(self):
        """Jobs this process has finished (deleted), for the heartbeat and the last log line."""
        return self._jobs_done

    def process(self, job):
        """Make one attempt at a job's payment; return what to do with the job:
        ("delete",), ("bury",) or ("release", delay in seconds)."""
        try:
            payment_id = decode_job(job.body)
        except ValueError as error:
            log.error("Burying job %d: cannot read its body (%s): %r", job.id, error, job.body[:200])
            return ("bury",)
        begun = self.attempts.begin(payment_id, str(job.id))
        if begun.outcome == MISSING:
            log.error("Burying job %d: no payment with ID %s", job.id, payment_id)
            return ("bury",)
        if begun.outcome == EXHAUSTED:
            log.warning("Payment %s: %d attempts did not finish (%d crashed); settling it with the processor",
                        payment_id, begun.attempts, begun.crashes)
            return self._settle(payment_id, begun, declined=None)
        if begun.outcome != STARTED:  # finished already, or another job holds a live lease on it
            log.info("Dropping job %d: payment %s is %s", job.id, payment_id, begun.outcome)
            return ("delete",)
        payment = begun.payment
        log.info("Processing payment ID: %s for user %s amount: %s %s",
                 payment_id, payment["user_id"], payment["amount"], payment["currency"])
        try:
            self.processor.charge(payment_id)  # idempotent by payment id: a retry never charges twice
        except ChargeDeclined as declined:
            if begun.attempts >= self.max_attempts:
                return self._settle(payment_id, begun, declined=str(declined))
            return self._retry_later(payment_id, begun, str(declined))
        lost = self.attempts.end(payment_id, begun.lease, COMPLETED)
        if lost:
            log.warning("Payment %s: attempt %d lost its lease (now %s); leaving it", payment_id, begun.attempts, lost)
            return ("delete",)
        log.info("Payment %s processed successfully", payment_id)
        return ("delete",)

    def _retry_later(self, payment_id, begun, reason):
        """A declined attempt with attempts left: PENDING again, due after a backoff."""
        delay = retry_delay(self.retry_base, begun.attempts)
        if self.attempts.end(payment_id, begun.lease, PENDING, retry_in=delay):
            return ("delete",)  # lost the lease: the newer attempt decides
        log.info("Payment %s attempt %d/%d declined (%s); retrying in %ds",
                 payment_id, begun.attempts, self.max_attempts, reason, delay)
        return ("release", delay)

    def _settle(self, payment_id, begun, declined):
        """No attempt left: before calling the payment FAILED, cancel it at the processor. That
        answers whether an earlier attempt's charge landed after all (a worker that lost its
        lease may still have had one in flight), and stops any from landing later."""
        charge_id = self.processor.cancel(payment_id)
        if charge_id is not None:
            if self.attempts.end(payment_id, begun.lease, COMPLETED) is None:
                log.info("Payment %s processed successfully (charge %s, made by an attempt that did not finish)",
                         payment_id, charge_id)
            return ("delete",)
        reason = failure_reason(begun.attempts, begun.crashes, declined)
        if self.attempts.end(payment_id, begun.lease, FAILED, reason=reason):
            return ("delete",)  # lost the lease: the newer attempt decides
        log.warning("Payment %s failed after %d attempts: %s", payment_id, begun.attempts, reason)
        return ("bury",)  # kept where the beanstalkd UI shows it

    def _handle(self, client, job):
        try:
            action = self.process(job)
        except REDIS_DOWN_ERRORS as error:
            # Redis is the source of truth; without it, give the job back to try again later.
            # The same job coming back takes over its own lease, so nothing waits for it to expire.
            log.warning("Releasing job %d: Redis is unavailable (%s)", job.id, describe(error))
            client.release(job, delay=1)
            raise
        except Exception:
            log.exception("Burying job %d: processing failed unexpectedly", job.id)
            action = ("bury",)
        try:
            if action[0] == "bury":
                client.bury(job)
            elif action[0] == "release":
                client.release(job, delay=action[1])
            else:
                client.delete(job)
                with self._count_lock:
                    self._jobs_done += 1
        except greenstalk.NotFoundError:
            # beanstalkd no longer has the job (it restarted, or handed the job on after its
            # TTR): the payment's state is in Redis already, so there is nothing left to do.
            log.info("Job %d is no longer in beanstalkd; nothing to %s", job.id, action[0])

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
            except (*QUEUE_ERRORS, *REDIS_DOWN_ERRORS) as error:
                name = "Redis" if isinstance(error, REDIS_DOWN_ERRORS) else "beanstalkd"
                if name not in down:  # one line per outage, not one per attempt
                    log.warning("Worker #%d: %s is unavailable (%s); retrying", number, name, describe(error))
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


def start_threads(target, count, name):
    """Start count threads running target(n), numbered from 1 as the seed's logs show."""
    threads = [threading.Thread(target=target, args=(n,), name=f"{name}-{n}") for n in range(1, count + 1)]
    for thread in threads:
        thread.start()
    return threads
