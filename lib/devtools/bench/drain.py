"""The worker half of `make bench`: payments queued, the time the worker takes to drain them, and
the bare greenstalk loop it is compared with."""

import json
import threading
import time
from decimal import Decimal

import greenstalk

from lib.devtools.peek import charge_requests
from lib.store import keys
from lib.store.jobqueue import JobQueue
from lib.store.payments import Payment, PaymentStore
from lib.store.ratelimit import RateLimit
from lib.store.redis_client import RedisClient, open_redis

# A payment job's Redis round trips: Attempts.begin, the processor's charge and Attempts.end
# (tests/test_round_trips.py holds the worker to it).
PAYMENT_REDIS_TRIPS = 3
# The fewest any worker following the contract can make: its two status changes, each a
# compare-and-set (PROCESSING before the processing delay, the outcome after it).
STATUS_CHANGE_TRIPS = 2


def queue_payments(redis: RedisClient, address: tuple, tube: str, count: int, users: int = 1) -> None:
    """Store count PENDING payments of `users` users and queue a job for each, as the API would.
    One user's payments are all in one shard: on a cluster, give each its own user to spread them."""
    store, limit, queue = PaymentStore(redis), RateLimit(capacity=count + 1, window=1), JobQueue((address,), tube, ttr=60)
    for number in range(count):
        payment = Payment.new(f"bench-drain-{number % users}", Decimal(5), "USD")
        store.admit(payment, limit)
        queue.put(payment.id)


def time_drain(redis: RedisClient, count: int, timeout: float = 600) -> float:
    """Payments finished per second, from the first charge request the processor receives (the
    worker has begun) to the last payment leaving the unfinished index."""
    deadline = time.monotonic() + timeout
    while not charge_requests(redis):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.001)
    started = time.monotonic()
    while left := unfinished(redis):
        assert time.monotonic() < deadline, f"{left} payments never finished"
        time.sleep(0.002)
    return count / (time.monotonic() - started)


def unfinished(redis: RedisClient) -> int:
    """How many payments are not finished yet, over every shard."""
    with redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            pipe.zcard(keys.unfinished(shard))
        return sum(pipe.execute())


def raw_drain(host: str, port: int, tube: str, threads: int, redis_url: str | None = None,
              redis_trips: int = PAYMENT_REDIS_TRIPS) -> None:
    """The baseline: threads, each with its own client, doing nothing but reserve and delete;
    prints {"jobs", "jobs_per_second"} as JSON.

    With redis_url, each job also makes redis_trips round trips through the project's client
    to a script that does nothing: the cost of the round trips alone, which no change to the
    work done inside them can go below.
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
                    nothing(keys=[keys.payment(str(job.id))])
                client.delete(job)
                done.append(1)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"jobs": len(done), "jobs_per_second": (len(done) - 1) / (time.monotonic() - started[0])}))


def fill_tube(address: tuple, tube: str, count: int) -> None:
    """count jobs of the size a payment job has, for the raw loop."""
    with greenstalk.Client(address, use=tube) as client:
        for _ in range(count):
            client.put('{"payment_id": "00000000-0000-4000-8000-000000000000"}')
