"""The worker: PENDING -> PROCESSING -> COMPLETED by compare-and-set; bad jobs buried, never fatal."""

import logging
import threading
import time

import pytest

from lib.config import load_config
from lib.jobqueue import encode_job
from lib.payments import COMPLETED, PENDING, PROCESSING, PaymentStore, new_payment
from lib.worker import PaymentWorker, start_workers
from tests.conftest import SEED_PAYMENT


def wait_for(condition, timeout=10.0):
    """Poll until condition() is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


@pytest.fixture
def run_worker(env, redis):
    """run_worker(**settings) starts worker threads on this test's tube; they stop at teardown."""
    stops, threads = [], []

    def run(**settings):
        config = load_config({**env, **{k.upper(): str(v) for k, v in settings.items()}})
        stop = threading.Event()
        worker = PaymentWorker(config, PaymentStore(redis), stop)
        stops.append(stop)
        threads.extend(start_workers(worker, config.max_workers))
        return worker, stop

    yield run
    for stop in stops:
        stop.set()
    for thread in threads:
        thread.join(10)


def status_of(redis, payment_id):
    return redis.hget(f"payment:{payment_id}", "status")


def test_a_posted_payment_is_completed_with_the_seeds_log_lines(client, redis, run_worker, caplog):
    caplog.set_level(logging.INFO, "paypoc.worker")
    payment_id = client.post_payment(SEED_PAYMENT)[2]["data"]["id"]
    run_worker()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    assert "Worker #1 started" in caplog.messages
    assert f"Processing payment ID: {payment_id} for user user_123 amount: 1500 XAF" in caplog.messages
    assert wait_for(lambda: f"Payment {payment_id} processed successfully" in caplog.messages)


def test_status_passes_through_processing_during_the_delay(client, redis, run_worker):
    payment_id = client.post_payment(SEED_PAYMENT)[2]["data"]["id"]
    run_worker(processing_delay=1)
    assert wait_for(lambda: status_of(redis, payment_id) == PROCESSING)
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)


@pytest.mark.parametrize("poison", [b"not json", b"\xff\xfe", b'{"payment_id": 7}',
                                    encode_job("00000000-0000-4000-8000-000000000000")])
def test_a_bad_job_is_buried_and_logged_and_the_next_one_still_completes(client, redis, tube, run_worker,
                                                                         caplog, poison):
    tube.put(poison)
    payment_id = client.post_payment(SEED_PAYMENT)[2]["data"]["id"]
    run_worker()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    assert tube.stats_tube(tube.using())["current-jobs-buried"] == 1
    assert tube.peek_buried().body == poison
    assert any(message.startswith("Burying job") for message in caplog.messages)


def test_a_duplicate_job_for_a_completed_payment_changes_nothing(client, redis, tube, run_worker):
    payment_id = client.post_payment(SEED_PAYMENT)[2]["data"]["id"]
    run_worker()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    finished = redis.hgetall(f"payment:{payment_id}")
    tube.put(encode_job(payment_id))
    assert wait_for(lambda: tube.stats_tube(tube.using())["current-jobs-ready"] == 0)
    time.sleep(0.2)
    assert redis.hgetall(f"payment:{payment_id}") == finished
    assert tube.stats_tube(tube.using())["current-jobs-buried"] == 0


def test_a_job_redelivered_after_a_crash_mid_processing_is_finished(redis, tube, run_worker):
    store = PaymentStore(redis)
    payment = new_payment("u", "5", "USD")
    store.add(payment)
    assert store.set_status(payment["id"], PENDING, PROCESSING) == PENDING  # as a crashed worker left it
    tube.put(encode_job(payment["id"]))
    run_worker()
    assert wait_for(lambda: status_of(redis, payment["id"]) == COMPLETED)


def test_compare_and_set_never_moves_a_status_from_one_it_did_not_expect(redis):
    store = PaymentStore(redis)
    payment = new_payment("u", "5", "USD")
    store.add(payment)
    assert store.set_status(payment["id"], PROCESSING, COMPLETED) == PENDING
    assert status_of(redis, payment["id"]) == PENDING
    assert store.set_status(payment["id"], PENDING, PROCESSING) == PENDING
    assert store.set_status(payment["id"], PENDING, PROCESSING) == PROCESSING  # a second taker loses
    assert store.set_status("00000000-0000-4000-8000-000000000000", PENDING, PROCESSING) is None


def test_stopping_lets_the_job_in_hand_finish(client, redis, run_worker):
    payment_id = client.post_payment(SEED_PAYMENT)[2]["data"]["id"]
    worker, stop = run_worker(processing_delay=0.5)
    assert wait_for(lambda: status_of(redis, payment_id) == PROCESSING)
    stop.set()
    assert wait_for(lambda: status_of(redis, payment_id) == COMPLETED)
    assert worker.jobs_done == 1


def test_many_threads_share_the_work(make_client, redis, run_worker, caplog):
    caplog.set_level(logging.INFO, "paypoc.worker")
    client = make_client(rate_limit=100)
    ids = [client.post_payment(SEED_PAYMENT)[2]["data"]["id"] for _ in range(5)]
    run_worker(max_workers=5, processing_delay=1)
    assert wait_for(lambda: all(status_of(redis, i) == COMPLETED for i in ids))
    processing = [i for i, m in enumerate(caplog.messages) if m.startswith("Processing payment")]
    finished = [i for i, m in enumerate(caplog.messages) if m.endswith("processed successfully")]
    # All five were in hand at once: every one started before the first one finished.
    assert len(processing) == 5 and max(processing) < min(finished)
