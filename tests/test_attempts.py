"""Attempts: one lease per payment, taken over by the same job at once, fenced by lease number;
attempts that never finished count as interrupted; the processor charges once and cancels for good."""

import time
from decimal import Decimal

import pytest

from lib.store import keys
from lib.store.attempts import Attempts, BeginOutcome, EndOutcome
from lib.store.payments import Status
from lib.worker.jobs import failure_reason
from lib.worker.processor import ChargeDeclined, SimulatedProcessor
from tests.conftest import (
    charge_requests,
    charges_made,
    store_payment,
    unfinished_score,
)

COMPLETED, FAILED, PENDING = Status.COMPLETED, Status.FAILED, Status.PENDING
P1, P2 = keys.new_payment_id(1), keys.new_payment_id(2)  # two payments' ids, for the processor alone


def stored_payment(redis):
    return store_payment(redis).id


def summary(begun):
    """(outcome, lease, attempts, interrupted) of a Begun."""
    return begun.outcome, begun.lease, begun.payment.attempts, begun.interrupted


def test_begin_starts_a_pending_payment_and_counts_the_attempt(redis):
    payment_id = stored_payment(redis)
    begun = Attempts(redis, 60, 3).begin(payment_id, 1)
    assert summary(begun) == (BeginOutcome.STARTED, 1, 1, 0) and not begun.last_attempt
    assert begun.payment[1:5] == ("u", Decimal(5), "USD", Status.PROCESSING)
    assert redis.hget(keys.payment(payment_id), "status") == "PROCESSING"


def test_the_last_attempt_is_marked_as_such(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, 2)
    assert not attempts.begin(payment_id, 1).last_attempt
    assert attempts.begin(payment_id, 1).last_attempt  # the second of two


def test_a_different_job_is_busy_while_the_lease_is_live(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, 3)
    attempts.begin(payment_id, 1)
    assert attempts.begin(payment_id, 2).outcome is BeginOutcome.BUSY


def test_the_same_job_redelivered_takes_over_at_once_and_the_attempt_before_counts_as_interrupted(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, 3)
    attempts.begin(payment_id, 1)
    assert summary(attempts.begin(payment_id, 1)) == ("started", 2, 2, 1)


def test_any_job_takes_over_once_the_lease_has_run_out(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, lease_seconds=0.2, max_attempts=3)
    attempts.begin(payment_id, 1)
    time.sleep(0.3)
    assert summary(attempts.begin(payment_id, 2))[:2] == ("started", 2)


def test_an_attempt_that_lost_its_lease_cannot_end_the_payment(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, 3)
    attempts.begin(payment_id, 1)
    attempts.begin(payment_id, 1)  # taken over: lease 2 holds it now
    assert attempts.end(payment_id, 1, FAILED, reason="late") == (EndOutcome.LEASE_LOST, Status.PROCESSING, 2)
    assert attempts.end(payment_id, 2, COMPLETED).outcome is EndOutcome.ENDED
    assert redis.hget(keys.payment(payment_id), "status") == COMPLETED


def test_with_no_attempt_left_the_lease_is_taken_to_settle_the_payment(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, max_attempts=2)
    attempts.begin(payment_id, 1)
    attempts.begin(payment_id, 1)  # the first attempt was interrupted
    assert summary(attempts.begin(payment_id, 1)) == ("settle", 3, 2, 2)  # and so was the second
    assert attempts.end(payment_id, 2, FAILED).outcome is EndOutcome.LEASE_LOST  # the lease is the settling one's
    assert attempts.end(payment_id, 3, FAILED, reason="crashed").outcome is EndOutcome.ENDED


def test_a_finished_payment_never_moves_again(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, 3)
    attempts.begin(payment_id, 1)
    attempts.end(payment_id, 1, COMPLETED)
    begun = attempts.begin(payment_id, 9)
    assert (begun.outcome, begun.payment.status, begun.payment.attempts) == ("finished", COMPLETED, 1)
    assert attempts.end(payment_id, 1, PENDING) == (EndOutcome.LEASE_LOST, COMPLETED, 1)
    assert redis.hget(keys.payment(payment_id), "status") == COMPLETED
    assert unfinished_score(redis, payment_id) is None


def test_a_duplicate_job_for_a_finished_payment_takes_it_out_of_the_unfinished_index(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, 3)
    attempts.begin(payment_id, 1)
    attempts.end(payment_id, 1, COMPLETED)
    redis.zadd(keys.unfinished(keys.shard_of_payment(payment_id)), {payment_id: 0})  # put back by a sweeper that lost a race
    assert attempts.begin(payment_id, 2).outcome is BeginOutcome.FINISHED
    assert unfinished_score(redis, payment_id) is None  # so it is not re-queued again


def test_a_retry_puts_the_payment_back_to_pending_stamped_with_when_it_is_due(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, 3)
    attempts.begin(payment_id, 1)
    before = time.time()
    assert attempts.end(payment_id, 1, PENDING, retry_in=4).outcome is EndOutcome.ENDED
    assert redis.hget(keys.payment(payment_id), "status") == PENDING
    assert before + 4 - 1 <= unfinished_score(redis, payment_id) <= time.time() + 4 + 1


def test_an_attempt_is_stamped_with_the_end_of_its_lease(redis):
    payment_id = stored_payment(redis)
    before = time.time()
    Attempts(redis, lease_seconds=30, max_attempts=3).begin(payment_id, 1)
    assert before + 30 - 1 <= unfinished_score(redis, payment_id) <= time.time() + 30 + 1


def test_an_unknown_payment_is_missing(redis):
    begun = Attempts(redis, 60, 3).begin("00000000-0000-4000-8000-000000000000", 1)
    assert (begun.outcome, begun.payment) == (BeginOutcome.MISSING, None)


@pytest.mark.parametrize("attempts, interrupted, declined, reason", [
    (3, 0, "declined by the simulated processor", "declined by the simulated processor"),
    (3, 3, None, "3 attempts did not finish: 3 interrupted"),
    (3, 1, None, "3 attempts did not finish: 1 interrupted, 2 declined"),
    (3, 1, "declined by the simulated processor",
     "3 attempts did not finish: 1 interrupted, 2 declined (declined by the simulated processor)"),
])
def test_a_failure_reason_says_which_attempts_were_interrupted_and_which_declined(attempts, interrupted, declined,
                                                                                   reason):
    assert failure_reason(attempts, interrupted, declined) == reason


def test_a_settling_cut_short_does_not_count_as_an_interrupted_attempt(redis):
    payment_id = stored_payment(redis)
    attempts = Attempts(redis, 60, max_attempts=1)
    attempts.begin(payment_id, 1)
    attempts.end(payment_id, 1, PENDING, retry_in=0)  # declined: the only attempt is used up
    assert summary(attempts.begin(payment_id, 1)) == ("settle", 2, 1, 0)  # settling; its worker dies
    assert summary(attempts.begin(payment_id, 1)) == ("settle", 3, 1, 0)  # still one declined, none interrupted


def test_the_processor_charges_a_payment_once_however_often_it_is_asked(redis):
    processor = SimulatedProcessor(redis, delay=0, failure_rate=0)
    first = processor.charge(P1)
    assert processor.charge(P1) == first and processor.charge(P2) != first
    assert charges_made(redis) == 2 and charge_requests(redis) == 3


def test_a_charged_payment_is_never_declined_afterwards(redis):
    SimulatedProcessor(redis, 0, 0).charge(P1)
    always_declines = SimulatedProcessor(redis, 0, failure_rate=1)
    assert always_declines.charge(P1).startswith("ch_")  # the first answer, replayed
    with pytest.raises(ChargeDeclined):
        always_declines.charge(P2)
    assert charges_made(redis) == 1


def test_cancelling_reports_a_charge_that_landed_and_refuses_any_later_one(redis):
    processor = SimulatedProcessor(redis, 0, 0)
    charged = processor.charge(P1)
    assert processor.cancel(P1) == charged  # it stands: the payment is COMPLETED, not FAILED
    assert processor.cancel(P2) is None
    with pytest.raises(ChargeDeclined, match="cancelled"):
        processor.charge(P2)  # a charge that arrives late, from a worker that lost its lease
    assert charges_made(redis) == 1
