"""The sweeper re-queues unfinished payments whose time is up, each claimed by one sweeper only."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lib.devtools.local_servers import free_port
from lib.store import keys
from lib.store.attempts import Attempts
from lib.store.jobqueue import JobQueue, QueueUnavailable
from lib.store.payments import PaymentStore
from lib.worker.sweeper import Sweeper
from tests.conftest import store_payment, unfinished_score


@pytest.fixture
def queue(env):
    host, port = env["BEANSTALK_ADDR"].split(":")
    return JobQueue(((host, int(port)),), env["BEANSTALK_TUBE"], ttr=60)


def add_payments(redis, count):
    return PaymentStore(redis), [store_payment(redis).id for _ in range(count)]


def sweeper(redis, queue, stale_after):
    return Sweeper(Attempts(redis, 60, 3), PaymentStore(redis), queue, stale_after, threading.Event())


def queued_ids(tube):
    ids = []
    while tube.stats_tube(tube.using())["current-jobs-ready"]:
        job = tube.reserve(timeout=0)
        ids.append(json.loads(job.body)["payment_id"])
        tube.delete(job)
    return ids


def test_only_payments_past_their_time_are_requeued(redis, queue, tube):
    store, (due, fresh) = add_payments(redis, 2)
    store.mark_due(due)
    assert sweeper(redis, queue, 60).sweep() == 1
    assert queued_ids(tube) == [due]
    # A claimed payment is re-stamped now, so it is stale again only after another STALE_AFTER.
    assert abs(unfinished_score(redis, due) - time.time()) < 2
    assert sweeper(redis, queue, 60).sweep() == 0


def test_a_payment_left_pending_longer_than_stale_after_is_requeued(redis, queue, tube):
    _, ids = add_payments(redis, 1)
    two_seconds = sweeper(redis, queue, 2)
    assert two_seconds.sweep() == 0  # within a second of its creation (scores are whole seconds of Redis TIME)
    time.sleep(3.1)  # past 2 s for certain
    assert two_seconds.sweep() == 1 and queued_ids(tube) == ids


def test_concurrent_sweepers_never_claim_the_same_payment(redis, queue, tube):
    store, ids = add_payments(redis, 200)
    for payment_id in ids:
        store.mark_due(payment_id)
    sweepers = [sweeper(redis, queue, 60) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda each: each.sweep(), sweepers))
    assert sum(counts) == 200 and sorted(queued_ids(tube)) == sorted(ids)


def test_payments_that_could_not_be_queued_stay_due(redis, env):
    store, ids = add_payments(redis, 3)
    for payment_id in ids:
        store.mark_due(payment_id)
    nowhere = JobQueue((("127.0.0.1", free_port()),), env["BEANSTALK_TUBE"], ttr=60)
    with pytest.raises(QueueUnavailable):
        sweeper(redis, nowhere, 60).sweep()
    assert [unfinished_score(redis, payment_id) for payment_id in ids] == [0, 0, 0]


def test_a_payment_that_finished_meanwhile_is_not_marked_due_again(redis):
    # The sweeper (or the API) could not queue the job, and a worker finished the payment from
    # an older one before it marks the payment due: marking it must not bring it back.
    store, (payment_id,) = add_payments(redis, 1)
    redis.zrem(keys.unfinished(keys.shard_of_payment(payment_id)), payment_id)  # as Attempts.end leaves a finished payment
    store.mark_due(payment_id)
    assert unfinished_score(redis, payment_id) is None


def test_one_beanstalkd_down_holds_back_only_the_payments_it_serves(redis, env, tube):
    # Two servers, the second one nowhere: shards are spread over both (shard mod 2).
    live = tuple(env["BEANSTALK_ADDR"].split(":"))
    queue = JobQueue(((live[0], int(live[1])), ("127.0.0.1", free_port())), env["BEANSTALK_TUBE"], ttr=60)
    store = PaymentStore(redis)
    ids = [store_payment(redis, user_id=f"user-{n}").id for n in range(40)]  # a user's shard is its payments'
    store.mark_due(*ids)
    on_live = {payment_id for payment_id in ids if keys.shard_of_payment(payment_id) % 2 == 0}
    assert on_live and on_live != set(ids)  # these 40 users: each server serves some
    with pytest.raises(QueueUnavailable):
        sweeper(redis, queue, 60).sweep()
    assert set(queued_ids(tube)) == on_live
    assert all(unfinished_score(redis, payment_id) == 0 for payment_id in set(ids) - on_live)  # still due
