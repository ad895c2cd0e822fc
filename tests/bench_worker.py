"""The worker half of `make bench`: drain rate against a bare greenstalk loop, and thread efficiency."""

import json
import threading
import time

import greenstalk

from lib.jobqueue import JobQueue
from lib.payments import UNFINISHED_KEY
from lib.processor import charge_requests
from lib.redis_client import open_redis
from tests.conftest import store_payment


def queue_payments(redis, address, tube, count):
    """Store count PENDING payments and queue a job for each, as the API would."""
    queue = JobQueue(address, tube, ttr=60)
    for _ in range(count):
        queue.put(store_payment(redis)["id"])


def time_drain(redis, count, timeout=600):
    """Payments finished per second, from the first charge request the processor receives (the
    worker has begun) to the last payment leaving the unfinished index."""
    deadline = time.monotonic() + timeout
    while not charge_requests(redis):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.001)
    started = time.monotonic()
    while left := redis.zcard(UNFINISHED_KEY):
        assert time.monotonic() < deadline, f"{left} payments never finished"
        time.sleep(0.002)
    return count / (time.monotonic() - started)


# A payment job's Redis round trips: Attempts.begin, the processor's charge and Attempts.end
# (tests/test_round_trips.py holds the worker to it).
PAYMENT_REDIS_TRIPS = 3
# The fewest any worker following DESIGN.md could make: its two status changes, each a
# compare-and-set (PROCESSING before the processing delay, the outcome after it).
STATUS_CHANGE_TRIPS = 2


def raw_drain(host, port, tube, threads, redis_url=None, redis_trips=PAYMENT_REDIS_TRIPS):
    """The baseline: threads, each with its own client, doing nothing but reserve and delete.

    With redis_url, each job also makes redis_trips round trips (as many as a payment makes,
    unless told otherwise) through the project's client, to a script that does nothing: the
    cost of the round trips alone, which no change to the work done inside them can go below.
    """
    nothing = open_redis(redis_url).register_script("return 1") if redis_url else None
    trips = redis_trips if nothing else 0
    done, started = [], []

    def loop():
        with greenstalk.Client((host, port), watch=tube) as client:
            while True:
                try:
                    job = client.reserve(timeout=0)
                except greenstalk.TimedOutError:
                    return
                if not started:
                    started.append(time.monotonic())
                for _ in range(trips):
                    nothing(keys=[f"payment:{job.id}"])
                client.delete(job)
                done.append(1)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"jobs": len(done), "jobs_per_second": (len(done) - 1) / (time.monotonic() - started[0])}))


def fill_tube(address, tube, count):
    """count jobs of the size a payment job has, for the raw loop."""
    with greenstalk.Client(address, use=tube) as client:
        for _ in range(count):
            client.put('{"payment_id": "00000000-0000-4000-8000-000000000000"}')


def peak_rss_mb(pid):
    """(peak, current) resident memory of a process, in MB, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024
