"""The measurements of `make bench`, one function each, on the servers __main__ started."""

import json
import statistics
import subprocess
import sys
import time
from decimal import Decimal

from lib.devtools.bench import drain, wrk
from lib.devtools.local_servers import free_port
from lib.devtools.processes import ROOT, Process, answers, wait_for
from lib.store import keys
from lib.store.payments import Payment, PaymentStore, Status
from lib.store.ratelimit import RateLimit
from lib.store.redis_client import RedisClient

PRELOAD_BATCH = 10_000
LIST_USER_PAYMENTS = 50  # payments of the user whose first page the "list" subject asks for


def start_server(args: list[str], env: dict, log_path: str, url: str) -> Process:
    """A server process, once url answers."""
    server = Process(args, env, log_path)
    assert wait_for(lambda: answers(url)), f"{' '.join(args)} did not start: see {log_path}"
    return server


def start_api(env: dict, tmp: str, name: str) -> tuple[Process, str]:
    """The API as a process, with the rate limit out of the way; its process and base URL."""
    port = free_port()
    api = start_server(["paypoc.py"], {**env, "PORT": str(port), "RATE_LIMIT": "1000000"}, f"{tmp}/{name}.log",
                       f"http://127.0.0.1:{port}/health")
    return api, f"http://127.0.0.1:{port}"


def start_hello(env: dict, tmp: str, *redis_url_and_key: str) -> tuple[Process, str]:
    """A hello-world app (after a Redis round trip, given a URL and key); its process and URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    hello = start_server(["-m", "lib.devtools.bench", "hello", str(port), env.get("THREADS", "8"), *redis_url_and_key],
                         {}, f"{tmp}/hello.log", url)
    return hello, url


def some_payment_ids(redis: RedisClient) -> list[str]:
    """Up to 1,000 stored payment ids, for the GET subject."""
    return [key.rsplit(":", 1)[1] for _, key in zip(range(1000), redis.scan_iter("payment:*", count=1000))]


def http_section(env: dict, sizes: dict, tmp: str, redis: RedisClient, run: int) -> dict:
    """POST and GET against hello-world (alone, and after a GET's Redis round trip), interleaved
    round by round so machine noise cancels."""
    api, base = start_api(env, tmp, f"api-{run}")
    wrk.run_wrk(f"{base}/payments", wrk.post_script(run * 100), 1)  # warm up, and make ids
    ids = some_payment_ids(redis)
    hello, hello_url = start_hello(env, tmp)
    # The same after a GET's Redis round trip: as cheap as a GET could be.
    hello_hgetall, hello_hgetall_url = start_hello(env, tmp, env["REDIS_URL"], keys.payment(ids[0]))
    store, limit = PaymentStore(redis), RateLimit(capacity=LIST_USER_PAYMENTS, window=1)
    for _ in range(LIST_USER_PAYMENTS - redis.zcard(keys.user_payments("bench-list"))):
        store.admit(Payment.new("bench-list", Decimal(5), "USD"), limit)  # the same list, empty store or a million stored
    subjects = {"hello": (hello, hello_url, ""), "hello_hgetall": (hello_hgetall, hello_hgetall_url, ""),
                "post": (api, f"{base}/payments", None), "get": (api, f"{base}/payments", wrk.get_script(ids)),
                "list": (api, f"{base}/payments?user_id=bench-list&limit=10", "")}
    runs = {name: [] for name in subjects}
    for round_ in range(sizes["rounds"]):
        for name, (server, url, script) in subjects.items():
            script = wrk.post_script(run * 100 + round_ + 1) if script is None else script
            runs[name].append(wrk.measure(server, url, script, sizes["seconds"]))
    for server in (api, hello, hello_hgetall):
        server.stop()
    medians = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "switches_per_request")
    result = {name: {key: statistics.median(r[key] for r in rs) for key in medians}
              | {"errors": sum(r["errors"] + r["non2xx"] for r in rs)} for name, rs in runs.items()}
    for name in ("hello_hgetall", "post", "get", "list"):
        result[name]["ratio_to_hello"] = result[name]["rps"] / result["hello"]["rps"]
    return result


def rss_section(env: dict, sizes: dict, tmp: str, redis: RedisClient) -> dict:
    """Peak memory of an API process over `rss_requests` requests, and its growth in the second half."""
    api, base = start_api(env, tmp, "api-rss")
    ids = some_payment_ids(redis)
    sent, chunk, at_half = 0, 0, None
    while sent < sizes["rss_requests"]:
        script = wrk.post_script(9000 + chunk) if chunk % 2 == 0 or not ids else wrk.get_script(ids)
        sent += wrk.run_wrk(f"{base}/payments", script, 1)["requests"]
        chunk += 1
        if at_half is None and sent >= sizes["rss_requests"] / 2:
            at_half = api.memory_mb()[1]
    peak, now = api.memory_mb()
    api.stop()
    return {"requests": sent, "rss_at_half_mb": at_half, "rss_at_end_mb": now, "peak_mb": peak,
            "growth_second_half_mb": now - at_half}


def drain_section(env: dict, sizes: dict, tmp: str, redis: RedisClient, address: tuple[str, int]) -> dict:
    """The worker draining queued payments (4 threads, no delay) beside a bare reserve/delete loop,
    and beside that loop making, with no work in them, a payment's three Redis round trips and
    the two that any worker must make (its status changes)."""
    count = sizes["drain_jobs"]
    loops = {"raw": 0, "status_changes": drain.STATUS_CHANGE_TRIPS, "round_trips": drain.PAYMENT_REDIS_TRIPS}
    rates = {name: [] for name in [*loops, "worker"]}
    for round_ in range(max(2, sizes["rounds"] - 1)):
        for name, trips in loops.items():
            tube = f"bench-{name}-{round_}"
            drain.fill_tube(address, tube, count)
            command = [sys.executable, "-m", "lib.devtools.bench", "raw-drain", address[0], str(address[1]), tube, "4"]
            output = subprocess.run(command + ([env["REDIS_URL"], str(trips)] if trips else []), cwd=ROOT,
                                    capture_output=True, text=True, check=True, timeout=600).stdout
            rates[name].append(json.loads(output)["jobs_per_second"])
        redis.flushall()
        tube = f"bench-worker-{round_}"
        drain.queue_payments(redis, address, tube, count)
        worker = Process(["paypoc_worker.py"], {**env, "BEANSTALK_TUBE": tube, "MAX_WORKERS": "4",
                                                "PROCESSING_DELAY": "0"}, f"{tmp}/drain.log")
        rates["worker"].append(drain.time_drain(redis, count))
        worker.stop()
    raw, least, trips, ours = (statistics.median(rates[name]) for name in (*loops, "worker"))
    return {"jobs": count, "raw_jobs_per_second": raw, "status_changes_jobs_per_second": least,
            "round_trips_jobs_per_second": trips, "worker_jobs_per_second": ours, "ratio": ours / raw,
            "status_changes_ratio": least / raw, "round_trips_ratio": trips / raw,
            "ratio_to_status_changes": ours / least, "ratio_to_round_trips": ours / trips}


def efficiency_section(env: dict, sizes: dict, tmp: str, redis: RedisClient, address: tuple[str, int]) -> dict:
    """50 threads, 0.2 s per payment: the ideal is 250 payments a second."""
    redis.flushall()
    count = sizes["efficiency_jobs"]
    drain.queue_payments(redis, address, "bench-efficiency", count)
    worker = Process(["paypoc_worker.py"], {**env, "BEANSTALK_TUBE": "bench-efficiency", "MAX_WORKERS": "50",
                                            "PROCESSING_DELAY": "0.2"}, f"{tmp}/efficiency.log")
    rate = drain.time_drain(redis, count)
    peak, _ = worker.memory_mb()
    worker.stop()
    return {"jobs": count, "jobs_per_second": rate, "ideal": 250.0, "efficiency": rate / 250.0,
            "worker_peak_rss_mb_50_threads": peak}


def preload(redis: RedisClient, count: int) -> float:
    """Store count COMPLETED payments of 100,000 users, as the store writes them; return the seconds it took."""
    started = time.monotonic()
    done = Payment.new("preload", Decimal("19.99"), "USD")._replace(status=Status.COMPLETED, attempts=1)
    for first in range(0, count, PRELOAD_BATCH):
        with redis.pipeline(transaction=False) as pipe:
            for n in range(first, min(first + PRELOAD_BATCH, count)):
                payment = done._replace(id=f"{0xBE7C4:08x}-0000-4000-8000-{n:012x}", user_id=f"preload-{n % 100_000}")
                pipe.hset(keys.payment(payment.id), mapping=payment.to_redis())
                pipe.zadd(keys.user_payments(payment.user_id), {payment.id: n})
            pipe.execute()
    return time.monotonic() - started


def memory_per_payment(redis: RedisClient) -> float:
    """Average bytes Redis holds for one stored payment (MEMORY USAGE of its hash)."""
    keys = [key for _, key in zip(range(200), redis.scan_iter("payment:*", count=1000))]
    return statistics.mean(redis.memory_usage(key, samples=0) for key in keys)
