"""`make bench`: the API and the worker measured against their baselines in one run; prints a table, writes JSON.

python -m tests.bench [--smoke] [--preload N] [--out PATH]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from lib.local_servers import LocalServer, beanstalkd_command, free_port, redis_command
from lib.payments import payment_key, user_index_key
from lib.redis_client import open_redis
from tests import bench_http, bench_worker
from tests.conftest import store_payment
from tests.processes import ROOT, answers, wait_for

FULL = {"seconds": 5, "rounds": 3, "rss_requests": 100_000, "drain_jobs": 5000, "efficiency_jobs": 1000}
SMOKE = {"seconds": 1, "rounds": 1, "rss_requests": 2000, "drain_jobs": 200, "efficiency_jobs": 100}
PRELOAD_BATCH = 50_000
LIST_USER_PAYMENTS = 50  # payments of the user whose first page the "list" subject asks for
# Completed payments made inside Redis, shaped and sized as real ones (ids as long as a UUID).
PRELOAD_LUA = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local id = string.format('%08x-0000-4000-8000-%012x', tonumber(ARGV[3]), i)
  local user = 'preload-' .. (i % 100000)
  redis.call('HSET', 'payment:' .. id, 'id', id, 'user_id', user, 'amount', '19.99',
             'currency', 'USD', 'status', 'COMPLETED', 'attempts', '1',
             'initiated_at', '2026-11-24T10:00:00.000000Z', 'updated_at', '2026-11-24T10:00:03.000000Z')
  redis.call('ZADD', 'payments:user:' .. user, i, id)
end
return 1
"""


def start(command, env, log_path):
    """A child process of ours (an entry point, or this module in another role)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})


def stop(process):
    process.terminate()
    process.wait(30)


def start_api(env, tmp, name):
    port = free_port()
    api = start([sys.executable, "paypoc.py"], {**env, "PORT": str(port), "RATE_LIMIT": "1000000"},
                f"{tmp}/{name}.log")
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: answers(f"{base}/health")), "the API did not start"
    return api, base


def start_hello(env, tmp, *redis_url_and_key):
    """A hello-world app on a port of its own, after a Redis round trip if given a URL and key
    (bench_http.serve_hello); returns the process and its URL."""
    port = free_port()
    hello = start([sys.executable, "-m", "tests.bench", "hello", str(port), env.get("THREADS", "8"),
                   *redis_url_and_key], {}, f"{tmp}/hello.log")
    url = f"http://127.0.0.1:{port}/"
    assert wait_for(lambda: answers(url)), "a hello-world app did not start"
    return hello, url


def http_section(env, sizes, tmp, redis, run):
    """POST and GET against hello-world (alone, and after a GET's Redis round trip), interleaved
    round by round so machine noise cancels."""
    api, base = start_api(env, tmp, f"api-{run}")
    bench_http.wrk(f"{base}/payments", bench_http.post_script(run * 100), 1)  # warm up, and make ids
    ids = [key.split(":", 1)[1] for _, key in zip(range(1000), redis.scan_iter("payment:*", count=1000))]
    hello, hello_url = start_hello(env, tmp)
    # The same after a GET's Redis round trip: as cheap as a GET could be.
    hello_hgetall, hello_hgetall_url = start_hello(env, tmp, env["REDIS_URL"], payment_key(ids[0]))
    for _ in range(LIST_USER_PAYMENTS - redis.zcard(user_index_key("bench-list"))):
        store_payment(redis, "bench-list")  # the same list, empty store or a million stored
    subjects = {"hello": (hello, hello_url, ""), "hello_hgetall": (hello_hgetall, hello_hgetall_url, ""),
                "post": (api, f"{base}/payments", None), "get": (api, f"{base}/payments", bench_http.get_script(ids)),
                "list": (api, f"{base}/payments?user_id=bench-list&limit=10", "")}
    runs = {name: [] for name in subjects}
    for round_ in range(sizes["rounds"]):
        for name, (server, url, script) in subjects.items():
            script = bench_http.post_script(run * 100 + round_ + 1) if script is None else script
            runs[name].append(bench_http.wrk_on(server.pid, url, script, sizes["seconds"]))
    for server in (api, hello, hello_hgetall):
        stop(server)
    medians = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "switches_per_request")
    result = {name: {key: statistics.median(r[key] for r in rs) for key in medians}
              | {"errors": sum(r["errors"] + r["non2xx"] for r in rs)} for name, rs in runs.items()}
    for name in ("hello_hgetall", "post", "get", "list"):
        result[name]["ratio_to_hello"] = result[name]["rps"] / result["hello"]["rps"]
    return result


def rss_section(env, sizes, tmp, redis):
    """Peak memory of an API process over `rss_requests` requests, and its growth in the second half."""
    api, base = start_api(env, tmp, "api-rss")
    ids = [key.split(":", 1)[1] for _, key in zip(range(1000), redis.scan_iter("payment:*", count=1000))]
    sent, chunk, at_half = 0, 0, None
    while sent < sizes["rss_requests"]:
        script = bench_http.post_script(9000 + chunk) if chunk % 2 == 0 or not ids else bench_http.get_script(ids)
        sent += bench_http.wrk(f"{base}/payments", script, 1)["requests"]
        chunk += 1
        if at_half is None and sent >= sizes["rss_requests"] / 2:
            at_half = bench_worker.peak_rss_mb(api.pid)[1]
    peak, now = bench_worker.peak_rss_mb(api.pid)
    stop(api)
    return {"requests": sent, "rss_at_half_mb": at_half, "rss_at_end_mb": now, "peak_mb": peak,
            "growth_second_half_mb": now - at_half}


def drain_section(env, sizes, tmp, redis, address):
    """The worker draining queued payments (4 threads, no delay) beside a bare reserve/delete loop,
    and beside that loop making, with no work in them, a payment's three Redis round trips and
    the two that any worker must make (its status changes)."""
    count = sizes["drain_jobs"]
    loops = {"raw": 0, "status_changes": bench_worker.STATUS_CHANGE_TRIPS,
             "round_trips": bench_worker.PAYMENT_REDIS_TRIPS}
    rates = {name: [] for name in [*loops, "worker"]}
    for round_ in range(max(2, sizes["rounds"] - 1)):
        for name, trips in loops.items():
            tube = f"bench-{name}-{round_}"
            bench_worker.fill_tube(address, tube, count)
            command = [sys.executable, "-m", "tests.bench", "raw-drain", address[0], str(address[1]), tube, "4"]
            output = subprocess.run(command + ([env["REDIS_URL"], str(trips)] if trips else []), cwd=ROOT,
                                    capture_output=True, text=True, check=True, timeout=600).stdout
            rates[name].append(json.loads(output)["jobs_per_second"])
        redis.flushall()
        tube = f"bench-worker-{round_}"
        bench_worker.queue_payments(redis, address, tube, count)
        worker = start([sys.executable, "paypoc_worker.py"], {**env, "BEANSTALK_TUBE": tube, "MAX_WORKERS": "4",
                                                              "PROCESSING_DELAY": "0"}, f"{tmp}/drain.log")
        rates["worker"].append(bench_worker.time_drain(redis, count))
        stop(worker)
    raw, least, trips, ours = (statistics.median(rates[name]) for name in (*loops, "worker"))
    return {"jobs": count, "raw_jobs_per_second": raw, "status_changes_jobs_per_second": least,
            "round_trips_jobs_per_second": trips, "worker_jobs_per_second": ours, "ratio": ours / raw,
            "status_changes_ratio": least / raw, "round_trips_ratio": trips / raw,
            "ratio_to_round_trips": ours / trips}


def efficiency_section(env, sizes, tmp, redis, address):
    """50 threads, 0.2 s per payment: the ideal is 250 payments a second."""
    redis.flushall()
    count = sizes["efficiency_jobs"]
    bench_worker.queue_payments(redis, address, "bench-efficiency", count)
    worker = start([sys.executable, "paypoc_worker.py"], {**env, "BEANSTALK_TUBE": "bench-efficiency",
                                                          "MAX_WORKERS": "50", "PROCESSING_DELAY": "0.2"},
                   f"{tmp}/efficiency.log")
    rate = bench_worker.time_drain(redis, count)
    peak, _ = bench_worker.peak_rss_mb(worker.pid)
    stop(worker)
    return {"jobs": count, "jobs_per_second": rate, "ideal": 250.0, "efficiency": rate / 250.0,
            "worker_peak_rss_mb_50_threads": peak}


def preload(redis, count):
    """Store count completed payments; return the seconds it took."""
    started = time.monotonic()
    script = redis.register_script(PRELOAD_LUA)
    for first in range(1, count + 1, PRELOAD_BATCH):
        script(args=[first, min(first + PRELOAD_BATCH - 1, count), 0xBE7C4])
    return time.monotonic() - started


def memory_per_payment(redis):
    """Average bytes Redis holds for one stored payment (MEMORY USAGE of its hash)."""
    keys = [key for _, key in zip(range(200), redis.scan_iter("payment:*", count=1000))]
    return statistics.mean(redis.memory_usage(key, samples=0) for key in keys)


def main(argv=None):
    """Run every section on servers of its own; print the table and write the JSON."""
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the bench runs")
    parser.add_argument("--preload", type=int, default=0, help="also measure HTTP with this many payments stored")
    parser.add_argument("--out", default=".run/bench.json", help="where to write the figures as JSON")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    bench_http.require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, beanstalk_port = free_port(), free_port()
        servers = [LocalServer("redis", redis_port, redis_command(redis_port, tmp), f"{tmp}/redis.log"),
                   LocalServer("beanstalkd", beanstalk_port, beanstalkd_command(beanstalk_port), f"{tmp}/b.log")]
        for server in servers:
            server.start()
        try:
            redis = open_redis(f"redis://127.0.0.1:{redis_port}/0", timeout=30)
            env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BEANSTALK_ADDR": f"127.0.0.1:{beanstalk_port}",
                   "LOG_LEVEL": "INFO", "STALE_AFTER": "3600"}
            results = {"sizes": sizes, "http": http_section(env, sizes, tmp, redis, 1)}
            results["memory_per_payment_bytes"] = memory_per_payment(redis)
            if args.preload:
                results["preload"] = {"payments": args.preload, "seconds": preload(redis, args.preload)}
                results["http_preloaded"] = http_section(env, sizes, tmp, redis, 2)
            results["api_memory"] = rss_section(env, sizes, tmp, redis)
            address = ("127.0.0.1", beanstalk_port)
            results["drain"] = drain_section(env, sizes, tmp, redis, address)
            results["efficiency"] = efficiency_section(env, sizes, tmp, redis, address)
        finally:
            for server in servers:
                server.stop()
    from tests.bench_report import table
    print(table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as out:
        json.dump(results, out, indent=2)
    print(f"figures written to {args.out}")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["hello"]:
        bench_http.serve_hello(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6])
    elif sys.argv[1:2] == ["raw-drain"]:
        redis_url, trips = (sys.argv[6], int(sys.argv[7])) if len(sys.argv) > 6 else (None, 0)
        bench_worker.raw_drain(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), redis_url, trips)
    else:
        main()
