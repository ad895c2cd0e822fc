"""Delivery guarantees, proved on the real processes: kill -9, lost jobs, outages, failures, chaos."""

import hashlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import greenstalk
import pytest

from lib.devtools.processes import http, wait_for
from lib.store.redis_client import open_redis
from lib.worker.processor import CANCEL_LUA, CHARGE_LUA
from tests.conftest import charge_requests, charges_made, on_both_topologies
from tests.faults import FaultProxy


@pytest.fixture
def stack(own_servers):
    """Servers of this test's own (conftest's own_servers), to break at will."""
    return own_servers


@pytest.fixture
def env(stack, topology, request):
    """Overrides conftest's env: the processes under test use this test's own servers. On a
    cluster: the session's cluster, and this test's own beanstalkd with the session's second one."""
    beanstalkd = f"127.0.0.1:{stack['beanstalkd'].port}"
    if topology == "cluster":
        second = request.getfixturevalue("second_beanstalkd")
        return {"REDIS_URL": request.getfixturevalue("redis_cluster").url, "REDIS_CLUSTER": "yes",
                "BEANSTALK_ADDR": f"{beanstalkd},127.0.0.1:{second.port}", "BEANSTALK_TUBE": f"jobs-{uuid.uuid4().hex[:8]}",
                "RATE_LIMIT": "1000", "PROCESSING_DELAY": "0"}
    return {"REDIS_URL": f"redis://127.0.0.1:{stack['redis'].port}/0", "REDIS_CLUSTER": "no",
            "BEANSTALK_ADDR": beanstalkd, "BEANSTALK_TUBE": "payment_jobs", "RATE_LIMIT": "1000",
            "PROCESSING_DELAY": "0"}


@pytest.fixture
def store(env):
    """A client on the processes' Redis, emptied first."""
    client = open_redis(env["REDIS_URL"], cluster=env["REDIS_CLUSTER"] == "yes")
    client.flushall()
    return client


def post(api, user="u"):
    return http("POST", f"{api}/payments", {"user_id": user, "amount": "10.5", "currency": "EUR"})


def status(api, payment_id):
    return http("GET", f"{api}/payments/{payment_id}")[2]["status"]


def all_completed(api, ids):
    return all(status(api, payment_id) == "COMPLETED" for payment_id in ids)


def tube_stats(stack, tube="payment_jobs"):
    with greenstalk.Client(("127.0.0.1", stack["beanstalkd"].port)) as client:
        return client.stats_tube(tube)


def test_kill_9_mid_charge_then_a_new_worker_completes_it_charged_once(api, launch, store):
    worker = launch("paypoc_worker.py", processing_delay=3)
    payment_id = post(api)[2]["data"]["id"]
    # The charge has landed at the processor, the answer has not come back: kill now.
    assert wait_for(lambda: charge_requests(store) == 1 and status(api, payment_id) == "PROCESSING")
    worker.kill_all()
    launch("paypoc_worker.py", processing_delay=0.1)
    assert wait_for(lambda: status(api, payment_id) == "COMPLETED")
    assert charges_made(store) == 1 and charge_requests(store) == 2  # asked twice, charged once
    assert http("GET", f"{api}/payments/{payment_id}")[2]["attempts"] == 2


@on_both_topologies
def test_jobs_lost_by_a_beanstalkd_restart_are_requeued_after_stale_after(api, launch, stack, store, env):
    ids = [post(api, user=f"u{n}")[2]["data"]["id"] for n in range(50)]
    # On a cluster, the jobs of the payments of this test's own beanstalkd's shards are lost.
    lost = tube_stats(stack, env["BEANSTALK_TUBE"])["current-jobs-ready"]
    assert lost > 0
    stack["beanstalkd"].stop()
    stack["beanstalkd"].start()  # no binlog: every job is gone
    worker = launch("paypoc_worker.py", max_workers=4, stale_after=1)
    assert wait_for(lambda: all_completed(api, ids), timeout=30)
    assert charges_made(store) == 50
    assert wait_for(lambda: worker.output().count("Re-queued unfinished payment") >= lost)


def test_a_redis_outage_mid_processing_is_ridden_out(api, launch, stack, store):
    ids = [post(api)[2]["data"]["id"] for _ in range(10)]
    worker = launch("paypoc_worker.py", max_workers=2, processing_delay=0.5)
    assert wait_for(lambda: charge_requests(store) >= 2)
    stack["redis"].stop()  # SIGTERM: Redis writes its append-only file before exiting
    cpu_before = worker.cpu_seconds()
    time.sleep(3)
    cpu_during = worker.cpu_seconds() - cpu_before
    stack["redis"].start()
    assert wait_for(lambda: all_completed(api, ids), timeout=30)
    assert worker.running()
    assert charges_made(store) == 10
    assert cpu_during < 1.0  # it waited; a spinning thread would burn ~3 s of CPU here
    # One line per thread (two workers, one sweeper) per outage, not one per retry.
    assert wait_for(lambda: "Redis is back" in worker.output())
    outage_lines = [line for line in worker.output().splitlines()
                    if "Redis is unavailable (" in line]
    assert 1 <= len(outage_lines) <= 3


def test_a_payment_that_always_fails_ends_failed_after_max_attempts_with_its_job_buried(api, launch, store, stack):
    launch("paypoc_worker.py", failure_rate=1, max_attempts=3, retry_delay=1)
    payment_id = post(api)[2]["data"]["id"]
    assert wait_for(lambda: status(api, payment_id) == "FAILED", timeout=30)
    payment = http("GET", f"{api}/payments/{payment_id}")[2]
    assert payment["attempts"] == 3 and payment["failure_reason"] == "declined by the simulated processor"
    assert charge_requests(store) == 3 and charges_made(store) == 0
    assert wait_for(lambda: tube_stats(stack)["current-jobs-buried"] == 1)


def test_a_poison_job_is_buried_and_the_next_payment_still_completes(api, launch, stack):
    with greenstalk.Client(("127.0.0.1", stack["beanstalkd"].port), use="payment_jobs") as client:
        client.put("this is not a payment job")
    worker = launch("paypoc_worker.py")
    payment_id = post(api)[2]["data"]["id"]
    assert wait_for(lambda: status(api, payment_id) == "COMPLETED")
    assert tube_stats(stack)["current-jobs-buried"] == 1
    assert worker.running() and wait_for(lambda: "Burying job" in worker.output())


@on_both_topologies
def test_chaos_every_accepted_payment_completes_and_is_charged_exactly_once(start_api, launch, stack, store):
    api = start_api(threads=16)
    settings = {"max_workers": 4, "processing_delay": 0.05, "stale_after": 1}
    workers = [launch("paypoc_worker.py", **settings)]
    chaos_done = threading.Event()

    def chaos():
        for round_ in range(3):
            time.sleep(0.4)
            workers[-1].kill_all()
            if round_ == 1:
                stack["beanstalkd"].stop()
                stack["beanstalkd"].start()  # empty again: its jobs are lost
            workers.append(launch("paypoc_worker.py", **settings))
        chaos_done.set()

    threading.Thread(target=chaos).start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda n: post(api, user=f"user-{n % 30}"), range(300)))
    assert chaos_done.wait(30)
    accepted = [body["data"]["id"] for code, _, body in answers if code == 201]
    assert len(accepted) == 300  # beanstalkd being down does not refuse a payment
    completed = wait_for(lambda: all_completed(api, accepted), timeout=60)
    assert completed, {payment_id: status(api, payment_id) for payment_id in accepted
                       if status(api, payment_id) != "COMPLETED"}
    assert charges_made(store) == 300
    assert charge_requests(store) >= 300


def test_a_payment_taken_while_beanstalkd_is_down_is_queued_once_it_is_back(api, launch, stack):
    stack["beanstalkd"].stop()
    status_code, _, body = post(api)
    assert status_code == 201 and body["data"]["status"] == "PENDING"  # the outbox: Redis has it
    stack["beanstalkd"].start()
    worker = launch("paypoc_worker.py")  # default STALE_AFTER: the API marked it due at once
    assert wait_for(lambda: status(api, body["data"]["id"]) == "COMPLETED")
    assert wait_for(lambda: f"Re-queued unfinished payment {body['data']['id']}" in worker.output())


@pytest.mark.parametrize("failure_rate, ending", [(1, "FAILED"), (0, "COMPLETED")])
def test_a_payment_that_keeps_killing_its_worker_is_settled_after_max_attempts(api, launch, store, stack,
                                                                              failure_rate, ending):
    """Declined or charged, each attempt's worker dies before it can say so; the fourth worker
    settles the payment with the processor instead of trying a fourth time."""
    payment_id = post(api)[2]["data"]["id"]
    for attempt in (1, 2, 3):
        worker = launch("paypoc_worker.py", processing_delay=30, failure_rate=failure_rate, max_attempts=3)
        # Mid-attempt: the charge request reached the processor, and its answer has not come back.
        assert wait_for(lambda: charge_requests(store) == attempt)
        worker.kill_all()  # beanstalkd hands the job out again at once
    launch("paypoc_worker.py", max_attempts=3)
    assert wait_for(lambda: status(api, payment_id) == ending)
    payment = http("GET", f"{api}/payments/{payment_id}")[2]
    assert payment["attempts"] == 3 and charge_requests(store) == 3  # settling charges nothing
    if ending == "FAILED":
        assert payment["failure_reason"] == "3 attempts did not finish: 3 interrupted" and charges_made(store) == 0
        assert wait_for(lambda: tube_stats(stack)["current-jobs-buried"] == 1)
    else:
        assert payment["failure_reason"] is None and charges_made(store) == 1


def sha(script):
    return hashlib.sha1(script.encode()).hexdigest().encode()


@pytest.mark.parametrize("late_charge_lands", ["after the payment failed", "before it is settled"])
def test_a_charge_from_a_lost_attempt_never_leaves_a_failed_payment_charged(api, launch, stack, store,
                                                                            late_charge_lands):
    """Worker A's charge request is held on its way to the processor and A dies; worker B takes
    the job over, its last attempt is declined, and it settles the payment. A's charge lands
    either after that (the processor refuses it: FAILED, never charged) or between B's decline
    and B's settling (the settling finds it: COMPLETED)."""
    store.script_load(CHARGE_LUA)  # so the held command is the charge itself, not a NOSCRIPT
    store.script_load(CANCEL_LUA)
    to_a, to_b = FaultProxy(stack["redis"].port), FaultProxy(stack["redis"].port)
    try:
        to_a.arm("stall", containing=sha(CHARGE_LUA))
        a = launch("paypoc_worker.py", max_attempts=2, redis_url=f"redis://127.0.0.1:{to_a.port}/0")
        payment_id = post(api)[2]["data"]["id"]
        assert to_a.fired.wait(10)
        a.kill_all()
        if late_charge_lands == "before it is settled":
            to_b.arm("stall", containing=sha(CANCEL_LUA))
        launch("paypoc_worker.py", max_attempts=2, failure_rate=1, redis_url=f"redis://127.0.0.1:{to_b.port}/0")
        if late_charge_lands == "after the payment failed":
            assert wait_for(lambda: status(api, payment_id) == "FAILED")
            to_a.release()
            assert wait_for(lambda: charge_requests(store) == 2)  # A's charge arrived, and was refused
            payment = http("GET", f"{api}/payments/{payment_id}")[2]
            assert (payment["status"], charges_made(store)) == ("FAILED", 0)
            assert payment["failure_reason"] == \
                "2 attempts did not finish: 1 interrupted, 1 declined (declined by the simulated processor)"
        else:
            assert to_b.fired.wait(10)  # B's last attempt was declined; its settling is held
            to_a.release()
            assert wait_for(lambda: charges_made(store) == 1)  # A's charge landed
            to_b.release()
            assert wait_for(lambda: status(api, payment_id) == "COMPLETED")
            assert charges_made(store) == 1
    finally:
        to_a.close()
        to_b.close()
