"""One job, one attempt at its payment: begin it, charge, then end it COMPLETED, retried or settled."""

import logging
import math
import random
from enum import StrEnum
from typing import NamedTuple

import greenstalk

from lib.store.attempts import Attempts, BeginOutcome, Begun, EndOutcome
from lib.store.jobqueue import Disposal, JobAction, decode_job
from lib.store.payments import Status
from lib.worker.processor import ChargeDeclined, SimulatedProcessor

log = logging.getLogger("paypoc.worker")

DELETE, BURY = Disposal(JobAction.DELETE), Disposal(JobAction.BURY)


class Outcome(StrEnum):
    """What a job came to, as the worker counts it (GET /queue, its last log line)."""

    COMPLETED = "completed"  # the payment is COMPLETED; the job is deleted
    FAILED = "failed"  # no attempt left: the payment is FAILED; the job is buried
    RETRIED = "retried"  # declined with attempts left: the job comes back after a backoff
    DROPPED = "dropped"  # a duplicate, or an attempt a newer one overtook: nothing left to do; deleted
    BURIED = "buried"  # cannot be processed (unreadable, no such payment, a bug): buried and logged


class Handled(NamedTuple):
    """A job's outcome, and what to do with the job."""

    outcome: Outcome
    disposal: Disposal


UNPROCESSABLE, DROPPED = Handled(Outcome.BURIED, BURY), Handled(Outcome.DROPPED, DELETE)


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
    """Makes the attempt a payment job asks for; Attempts decides how many a payment gets."""

    def __init__(self, attempts: Attempts, processor: SimulatedProcessor, retry_base: float):
        self.attempts, self.processor, self.retry_base = attempts, processor, retry_base

    def process(self, job: greenstalk.Job) -> Handled:
        """Make one attempt at the job's payment (or settle it); return its outcome and what to do with the job."""
        try:
            payment_id = decode_job(job.body)
        except ValueError as error:
            log.error("Burying job %d: cannot read its body (%s): %r", job.id, error, job.body[:200])
            return UNPROCESSABLE
        begun = self.attempts.begin(payment_id, job.id)
        if begun.outcome is BeginOutcome.MISSING:
            log.error("Burying job %d: no payment with ID %s", job.id, payment_id)
            return UNPROCESSABLE
        if begun.outcome is BeginOutcome.SETTLE:
            log.warning("Payment %s: %d attempts did not succeed (%d interrupted); settling it with the processor",
                        payment_id, begun.payment.attempts, begun.interrupted)
            return self._settle(begun, declined=None)
        if begun.outcome is not BeginOutcome.STARTED:  # a duplicate job: finished, or another job holds it
            log.info("Dropping job %d: payment %s is %s", job.id, payment_id,
                     "in hand elsewhere" if begun.outcome is BeginOutcome.BUSY else begun.payment.status)
            return DROPPED
        payment = begun.payment
        log.info("Processing payment ID: %s for user %s amount: %s %s",
                 payment.id, payment.user_id, payment.amount, payment.currency)
        try:
            self.processor.charge(payment.id)  # idempotent by payment id: a retry never charges twice
        except ChargeDeclined as declined:
            if begun.last_attempt:
                return self._settle(begun, declined=str(declined))
            return self._retry_later(begun, str(declined))
        ended = self.attempts.end(payment.id, begun.lease, Status.COMPLETED)
        if ended.outcome is EndOutcome.LEASE_LOST:
            log.warning("Payment %s: attempt %d lost its lease (now %s under lease %d); leaving it",
                        payment.id, payment.attempts, ended.status, ended.lease)
            return DROPPED
        log.info("Payment %s processed successfully", payment.id)
        return Handled(Outcome.COMPLETED, DELETE)

    def _retry_later(self, begun: Begun, reason: str) -> Handled:
        """A declined attempt with attempts left: PENDING again, due after a backoff."""
        payment, delay = begun.payment, retry_delay(self.retry_base, begun.payment.attempts)
        if self.attempts.end(payment.id, begun.lease, Status.PENDING, retry_in=delay).outcome is EndOutcome.LEASE_LOST:
            return DROPPED  # the newer attempt decides
        log.info("Payment %s attempt %d/%d declined (%s); retrying in %ds",
                 payment.id, payment.attempts, self.attempts.max_attempts, reason, delay)
        return Handled(Outcome.RETRIED, Disposal(JobAction.RELEASE, delay))

    def _settle(self, begun: Begun, declined: str | None) -> Handled:
        """No attempt left: before calling the payment FAILED, cancel it at the processor. That
        answers whether an earlier attempt's charge landed after all (a worker that lost its
        lease may still have had one in flight), and stops any from landing later."""
        payment = begun.payment
        charge_id = self.processor.cancel(payment.id)
        if charge_id is not None:
            if self.attempts.end(payment.id, begun.lease, Status.COMPLETED).outcome is EndOutcome.LEASE_LOST:
                return DROPPED  # the newer attempt decides
            log.info("Payment %s processed successfully (charge %s, made by an attempt that did not finish)",
                     payment.id, charge_id)
            return Handled(Outcome.COMPLETED, DELETE)
        reason = failure_reason(payment.attempts, begun.interrupted, declined)
        if self.attempts.end(payment.id, begun.lease, Status.FAILED, reason=reason).outcome is EndOutcome.LEASE_LOST:
            return DROPPED  # the newer attempt decides
        log.warning("Payment %s failed after %d attempts: %s", payment.id, payment.attempts, reason)
        return Handled(Outcome.FAILED, BURY)  # the job kept where the beanstalkd UI shows it
