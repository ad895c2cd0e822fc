"""One job, one attempt at its payment: begin it, charge, then end it COMPLETED, retried or settled."""

import logging
import math
import random
from typing import NamedTuple

import greenstalk

from lib.store.jobqueue import decode_job
from lib.store.payments import COMPLETED, FAILED, PENDING
from lib.worker.attempts import EXHAUSTED, MISSING, STARTED, Attempts
from lib.worker.processor import ChargeDeclined, SimulatedProcessor

log = logging.getLogger("paypoc.worker")


class Action(NamedTuple):
    """What to do with a job once its attempt is over."""

    verb: str  # "delete", "bury" or "release"
    delay: int = 0  # "release": seconds before beanstalkd hands the job out again


DELETE, BURY = Action("delete"), Action("bury")


def retry_delay(base: float, attempt: int, rng: random.Random = random) -> int:
    """Whole seconds before attempt+1: base * 2^(attempt-1), the upper half of it at random.

    The jitter spreads out retries of payments that failed together; beanstalkd counts
    delays in whole seconds, so the value is rounded up.
    """
    ceiling = base * 2 ** (attempt - 1)
    return math.ceil(rng.uniform(ceiling / 2, ceiling))


def failure_reason(attempts: int, interrupted: int, declined: str | None) -> str:
    """Why a payment failed: the processor's reason when every attempt was declined, else how
    many attempts were interrupted (never finished) and how many were declined."""
    if interrupted == 0 and declined:
        return declined
    counts = [f"{interrupted} interrupted"] + ([f"{attempts - interrupted} declined"] if attempts > interrupted else [])
    return f"{attempts} attempts did not finish: {', '.join(counts)}" + (f" ({declined})" if declined else "")


class PaymentJobs:
    """Makes the attempt a payment job asks for, at most max_attempts per payment."""

    def __init__(self, attempts: Attempts, processor: SimulatedProcessor, max_attempts: int, retry_base: float):
        self.attempts, self.processor = attempts, processor
        self.max_attempts, self.retry_base = max_attempts, retry_base

    def process(self, job: greenstalk.Job) -> Action:
        """Make one attempt at the job's payment (or settle it); return what to do with the job."""
        try:
            payment_id = decode_job(job.body)
        except ValueError as error:
            log.error("Burying job %d: cannot read its body (%s): %r", job.id, error, job.body[:200])
            return BURY
        begun = self.attempts.begin(payment_id, str(job.id))
        if begun.outcome == MISSING:
            log.error("Burying job %d: no payment with ID %s", job.id, payment_id)
            return BURY
        if begun.outcome == EXHAUSTED:
            log.warning("Payment %s: %d attempts did not succeed (%d interrupted); settling it with the processor",
                        payment_id, begun.attempts, begun.interrupted)
            return self._settle(payment_id, begun, declined=None)
        if begun.outcome != STARTED:  # finished already, or another job holds a live lease on it
            log.info("Dropping job %d: payment %s is %s", job.id, payment_id, begun.outcome)
            return DELETE
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
            return DELETE
        log.info("Payment %s processed successfully", payment_id)
        return DELETE

    def _retry_later(self, payment_id, begun, reason):
        """A declined attempt with attempts left: PENDING again, due after a backoff."""
        delay = retry_delay(self.retry_base, begun.attempts)
        if self.attempts.end(payment_id, begun.lease, PENDING, retry_in=delay):
            return DELETE  # lost the lease: the newer attempt decides
        log.info("Payment %s attempt %d/%d declined (%s); retrying in %ds",
                 payment_id, begun.attempts, self.max_attempts, reason, delay)
        return Action("release", delay)

    def _settle(self, payment_id, begun, declined):
        """No attempt left: before calling the payment FAILED, cancel it at the processor. That
        answers whether an earlier attempt's charge landed after all (a worker that lost its
        lease may still have had one in flight), and stops any from landing later."""
        charge_id = self.processor.cancel(payment_id)
        if charge_id is not None:
            if self.attempts.end(payment_id, begun.lease, COMPLETED) is None:
                log.info("Payment %s processed successfully (charge %s, made by an attempt that did not finish)",
                         payment_id, charge_id)
            return DELETE
        reason = failure_reason(begun.attempts, begun.interrupted, declined)
        if self.attempts.end(payment_id, begun.lease, FAILED, reason=reason):
            return DELETE  # lost the lease: the newer attempt decides
        log.warning("Payment %s failed after %d attempts: %s", payment_id, begun.attempts, reason)
        return BURY  # kept where the beanstalkd UI shows it

