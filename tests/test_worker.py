"""The worker: PENDING -> PROCESSING -> COMPLETED by compare-and-set; bad jobs buried, never fatal."""

import logging
import signal

import pytest

from lib.devtools.processes import http, wait_for
from lib.store import keys
from lib.store.attempts import Attempts, BeginOutcome
from lib.store.jobqueue import encode_job
from lib.store.payments import Status
from lib.worker.jobs import Outcome, retry_delay
from lib.worker.processor import SimulatedProcessor
from tests.conftest import (
    WALKTHROUGH_BODY,
    charge_requests,
    charges_made,
    store_payment,
    unfinished_score,
)

COMPLETED, FAILED, PROCESSING = Status.COMPLETED, Status.FAILED, Status.PROCESSING


def status_of(redis, payment_id):
    return redis.hget(keys.payment(payment_id), "status")


def test_a_posted_payment_is_completed_with_the_originals_log_lines(client, redis, run_worker, caplog):
    caplog.set_level(logging.INFO, "paypoc.worker")
    payment_id = client.post_payment(WALKTHROUGH_BODY)[2]["data"]["id"]
    run_worker()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    assert "Worker #1 started" in caplog.messages
    assert f"Processing payment ID: {payment_id} for user user_123 amount: 1500 XAF" in caplog.messages
    assert wait_for(lambda: f"Payment {payment_id} processed successfully" in caplog.messages)


def test_status_passes_through_processing_during_the_delay(client, redis, run_worker):
    payment_id = client.post_payment(WALKTHROUGH_BODY)[2]["data"]["id"]
    run_worker(processing_delay=1)
    assert wait_for(lambda: status_of(redis, payment_id) == PROCESSING)
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)


@pytest.mark.parametrize("poison", [b"not json", b"\xff\xfe", b'{"payment_id": 7}',
                                    encode_job("00000000-0000-4000-8000-000000000000")])
def test_a_bad_job_is_buried_and_logged_and_the_next_one_still_completes(client, redis, tube, run_worker,
                                                                         caplog, poison):
    tube.put(poison)
    payment_id = client.post_payment(WALKTHROUGH_BODY)[2]["data"]["id"]
    run_worker()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    assert tube.stats_tube(tube.using())["current-jobs-buried"] == 1
    assert tube.peek_buried().body == poison
    assert any(message.startswith("Burying job") for message in caplog.messages)


def test_a_duplicate_job_for_a_completed_payment_changes_nothing(client, redis, tube, run_worker):
    payment_id = client.post_payment(WALKTHROUGH_BODY)[2]["data"]["id"]
    worker, _ = run_worker()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    finished = redis.hgetall(keys.payment(payment_id))
    tube.put(encode_job(payment_id))
    assert wait_for(lambda: worker.jobs_done()[Outcome.DROPPED] == 1)  # the duplicate was taken, dropped and deleted
    assert worker.jobs_done()[Outcome.COMPLETED] == 1
    assert redis.hgetall(keys.payment(payment_id)) == finished
    assert tube.stats_tube(tube.using())["current-jobs-buried"] == 0


def test_a_job_redelivered_after_a_crash_mid_charge_completes_without_charging_twice(redis, tube, run_worker):
    payment = store_payment(redis)
    job_id = tube.put(encode_job(payment.id))
    # As a worker killed after the charge landed leaves it: PROCESSING under this job, charged.
    assert Attempts(redis, 60, 3).begin(payment.id, job_id).outcome is BeginOutcome.STARTED
    SimulatedProcessor(redis, 0, 0).charge(payment.id)
    run_worker()
    assert wait_for(lambda: status_of(redis, payment.id) == COMPLETED)
    assert charges_made(redis) == 1 and charge_requests(redis) == 2
    assert redis.hget(keys.payment(payment.id), "attempts") == "2"


def test_declined_attempts_are_retried_then_the_payment_fails_visibly(client, redis, tube, run_worker):
    payment_id = client.post_payment(WALKTHROUGH_BODY)[2]["data"]["id"]
    run_worker(failure_rate=1, max_attempts=2, retry_delay=0)
    assert wait_for(lambda: status_of(redis, payment_id) == FAILED)
    stored = client.request("GET", f"/payments/{payment_id}")[2]
    assert stored["attempts"] == 2 and stored["failure_reason"] == "declined by the simulated processor"
    assert wait_for(lambda: tube.stats_tube(tube.using())["current-jobs-buried"] == 1)
    assert charges_made(redis) == 0 and unfinished_score(redis, payment_id) is None


def test_retry_delays_double_with_jitter_within_bounds():
    for attempt, (low, high) in enumerate([(1, 1), (1, 2), (2, 4), (4, 8)], start=1):
        delays = {retry_delay(1, attempt) for _ in range(200)}
        assert low <= min(delays) and max(delays) <= high
    assert len({retry_delay(10, 3) for _ in range(200)}) > 1  # jitter spreads them out
    assert retry_delay(0, 5) == 0


def test_stopping_lets_the_job_in_hand_finish(client, redis, run_worker):
    payment_id = client.post_payment(WALKTHROUGH_BODY)[2]["data"]["id"]
    worker, stop = run_worker(processing_delay=0.5)
    assert wait_for(lambda: status_of(redis, payment_id) == PROCESSING)
    stop.set()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    # Counted once its job is deleted, after the payment's last write.
    assert wait_for(lambda: worker.jobs_done()[Outcome.COMPLETED] == 1)


def test_many_threads_share_the_work(make_client, redis, run_worker, caplog):
    caplog.set_level(logging.INFO, "paypoc.worker")
    client = make_client(rate_limit=100)
    ids = [client.post_payment(WALKTHROUGH_BODY)[2]["data"]["id"] for _ in range(5)]
    run_worker(max_workers=5, processing_delay=1)
    assert wait_for(lambda: all(status_of(redis, i) == COMPLETED for i in ids))
    processing = [i for i, m in enumerate(caplog.messages) if m.startswith("Processing payment")]
    finished = [i for i, m in enumerate(caplog.messages) if m.endswith("processed successfully")]
    # All five were in hand at once: every one started before the first one finished.
    assert len(processing) == 5 and max(processing) < min(finished)


def test_a_worker_counts_its_jobs_by_outcome_on_queue_and_in_its_last_log_line(api, launch, tube):
    worker = launch("paypoc_worker.py", failure_rate=1, max_attempts=2, retry_delay=0)
    declined = [http("POST", f"{api}/payments", {"user_id": f"u{n}", "amount": 1, "currency": "USD"})[2]["data"]["id"]
                for n in range(3)]
    tube.put(b"not json")
    [me] = wait_for(lambda: http("GET", f"{api}/queue")[2]["workers"])
    assert me["settings"] == {"processing_delay": 0.0, "failure_rate": 1.0, "max_attempts": 2, "retry_delay": 0.0}
    assert wait_for(lambda: all(http("GET", f"{api}/payments/{i}")[2]["status"] == FAILED for i in declined))
    tube.put(encode_job(declined[0]))  # a duplicate for a finished payment
    expected = {"completed": 0, "failed": 3, "retried": 3, "dropped": 1, "buried": 1}
    assert wait_for(lambda: http("GET", f"{api}/queue")[2]["workers"][0]["jobs_done"] == expected)
    assert worker.stop(signal.SIGTERM) == 0
    assert worker.output().splitlines()[-1].endswith(
        "Worker stopped after 8 job(s): 0 completed, 3 failed, 3 retried, 1 dropped, 1 buried")
