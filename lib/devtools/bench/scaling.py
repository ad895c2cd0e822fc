"""The scaling part of `make bench`: the API and the worker with 1 to N processes (N the cores), and
what one request or payment costs each process it passes through: the API, the worker, Redis,
beanstalkd, and wrk, which shares the cores with the API."""

import os
import resource
import statistics
import time
from collections import Counter

import greenstalk
import redis as redis_py

from lib.devtools.bench import drain, wrk
from lib.devtools.bench.sections import some_payment_ids, start_api
from lib.devtools.processes import Process, cpu_seconds, wait_for
from lib.runtime.config import available_cores, load_config
from lib.store.redis_client import RedisClient

CONNECTIONS_PER_PROCESS = 16  # wrk's connections for each API process: two per waitress thread, as elsewhere
WORKER_THREADS = 4  # MAX_WORKERS of each worker process, as in the drain section
DRAIN_POLL = 0.005  # seconds between looks at the tube; rare enough to cost beanstalkd next to nothing
SETTLE = 0.2  # seconds for the requests in flight when wrk stops to be answered, and counted with their run


def process_counts(cores: int) -> list[int]:
    """1, 2, ... cores; past 8 cores, only the powers of two and the cores, to keep the run short."""
    if cores <= 8:
        return list(range(1, cores + 1))
    return sorted({2 ** power for power in range(cores.bit_length()) if 2 ** power <= cores} | {cores})


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent busy so far, whoever for, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(field) for field in stat.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user to steal, less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def usage(redis: RedisClient, subject: Process | None, beanstalkd_pid: int) -> Counter:
    """What has been spent so far: CPU seconds of the subject (with its processes), of wrk (the
    children this process has waited for), of Redis, of beanstalkd and of the whole machine;
    Redis's calls and µs per command."""
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    # A stock client: the project's own pings a connection idle for a while, a command that is not the subject's.
    stock = redis_py.Redis(connection_pool=redis.connection_pool)
    cpu, commands = stock.info("cpu"), stock.info("commandstats")
    spent = Counter({"subject": subject.cpu_seconds() if subject else 0.0,
                     "wrk": ended.ru_utime + ended.ru_stime, "redis": cpu["used_cpu_sys"] + cpu["used_cpu_user"],
                     "beanstalkd": cpu_seconds(beanstalkd_pid), "machine": machine_cpu_seconds()})
    for name, stats in commands.items():
        if name != "cmdstat_info":  # our own look
            spent[f"calls {name.removeprefix('cmdstat_')}"] = stats["calls"]
            spent[f"usec {name.removeprefix('cmdstat_')}"] = stats["usec"]
    return spent


def spent_between(before: Counter, after: Counter) -> Counter:
    """after - before, keeping every key (a Counter's own subtraction drops zeros)."""
    return Counter({key: after[key] - before[key] for key in after})


def per_operation(spent: Counter, operations: int, seconds: float) -> dict:
    """The costs of one operation, from what a number of them spent in all over `seconds`; and how
    busy each process was, in cores. Redis counts the commands a script runs as commands too."""
    count = max(operations, 1)
    parts = ("subject", "wrk", "redis", "beanstalkd")
    commands = sorted(key.split()[1] for key in spent if key.startswith("calls ") and spent[key])
    return {**{f"{part}_cpu_us": spent[part] * 1e6 / count for part in parts},
            "redis_commands": sum(spent[f"calls {name}"] for name in commands) / count,
            "redis_scripts": (spent["calls evalsha"] + spent["calls eval"]) / count,
            "commands": {name: {"calls": spent[f"calls {name}"] / count, "usec": spent[f"usec {name}"] / count}
                         for name in commands},
            # The rest of the machine's busy time went to other programs: what this run competed with.
            "cores_busy": {**{part: spent[part] / seconds for part in parts},
                           "others": (spent["machine"] - sum(spent[part] for part in parts)) / seconds}}


def http_scaling(env: dict, sizes: dict, tmp: str, redis: RedisClient, beanstalkd_pid: int, counts: list[int]) -> dict:
    """POST and GET req/s with each count of API processes, rounds interleaved so noise cancels."""
    apis = {n: start_api({**env, "API_PROCESSES": str(n)}, tmp, f"api-scaling-{n}") for n in counts}

    def run(n, script, seconds):
        # wrk's own threads: enough not to be the limit on a machine with many cores.
        return wrk.run_wrk(f"{apis[n][1]}/payments", script, seconds, connections=CONNECTIONS_PER_PROCESS * n,
                           threads=max(2, n // 4))

    rates = {(n, op): [] for n in counts for op in ("post", "get")}
    spent = {key: Counter() for key in rates}
    operations, errors, seconds = Counter(), Counter(), Counter()
    try:
        for n in counts:
            run(n, wrk.post_script(7000 + n), 1)  # warm up every process and thread, and make ids
        ids = some_payment_ids(redis)
        for round_ in range(sizes["rounds"]):
            for n in counts:
                for op in ("post", "get"):
                    script = wrk.post_script(7100 + 100 * round_ + n) if op == "post" else wrk.get_script(ids)
                    before = usage(redis, apis[n][0], beanstalkd_pid)
                    result = run(n, script, sizes["seconds"])
                    time.sleep(SETTLE)
                    spent[n, op] += spent_between(before, usage(redis, apis[n][0], beanstalkd_pid))
                    seconds[n, op] += result["seconds"]
                    rates[n, op].append(result["rps"])
                    operations[n, op] += result["requests"]
                    errors[n, op] += result["errors"] + result["non2xx"]
    finally:  # a failed measurement leaves no API serving
        for api, _ in apis.values():
            api.stop()
    return {op: [{"processes": n, "rps": statistics.median(rates[n, op]), "errors": errors[n, op],
                  **per_operation(spent[n, op], operations[n, op], seconds[n, op])} for n in counts]
            for op in ("post", "get")}


def drain_seconds(client: greenstalk.Client, tube: str, timeout: float = 600) -> float:
    """Seconds until the tube has no job left to do, from now."""
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while True:
        stats = client.stats_tube(tube)
        if stats["current-jobs-ready"] + stats["current-jobs-reserved"] + stats["current-jobs-delayed"] == 0:
            return time.monotonic() - started
        assert time.monotonic() < deadline, f"{tube} still holds jobs: {stats}"
        time.sleep(DRAIN_POLL)


def drain_scaling(env: dict, sizes: dict, tmp: str, redis: RedisClient, address: tuple[str, int],
                  beanstalkd_pid: int, counts: list[int]) -> list[dict]:
    """Payments drained per second with each count of worker processes (no processing delay).

    The tube is paused while the workers start, so what is timed and counted is the drain alone:
    from the moment the tube opens, with every worker thread waiting on it, to the last job deleted.
    """
    count = sizes["drain_jobs"]
    rates, spent, seconds = {n: [] for n in counts}, {n: Counter() for n in counts}, Counter()
    with greenstalk.Client(address) as client:
        for round_ in range(sizes["rounds"]):
            for n in counts:
                redis.flushall()
                tube = f"bench-scaling-{n}-{round_}"
                drain.queue_payments(redis, address, tube, count)
                client.pause_tube(tube, 3600)
                worker = Process(["paypoc_worker.py"], {**env, "BEANSTALK_TUBE": tube, "WORKER_PROCESSES": str(n),
                                                        "MAX_WORKERS": str(WORKER_THREADS), "PROCESSING_DELAY": "0"},
                                 f"{tmp}/drain-scaling.log")
                try:
                    assert wait_for(lambda: client.stats_tube(tube)["current-waiting"] >= n * WORKER_THREADS, 30), \
                        f"the worker threads did not start: see {tmp}/drain-scaling.log"
                    before = usage(redis, worker, beanstalkd_pid)
                    client.pause_tube(tube, 0)
                    took = drain_seconds(client, tube)
                    rates[n].append(count / took)
                    seconds[n] += took
                    spent[n] += spent_between(before, usage(redis, worker, beanstalkd_pid))
                finally:
                    worker.stop()
    return [{"processes": n, "jobs": count, "jobs_per_second": statistics.median(rates[n]),
             **per_operation(spent[n], count * sizes["rounds"], seconds[n])} for n in counts]


def efficiency(rows: list[dict], rate: str) -> None:
    """Adds to each row its rate over (its processes x the rate of one process)."""
    one = rows[0][rate]
    for row in rows:
        row["efficiency"] = row[rate] / (row["processes"] * one)


def scaling_section(env: dict, sizes: dict, tmp: str, redis: RedisClient, address: tuple[str, int],
                    beanstalkd_pid: int) -> dict:
    """The API's POST and GET and the worker's drain with 1 to N processes, each with its costs."""
    cores = available_cores()
    counts = process_counts(cores)
    env = {**env, "API_PIN_CPUS": "yes"}  # as the API runs by default (the single-process rows run it unpinned)
    pinned = load_config({**os.environ, **env}).api_pin_cpus  # as the API processes will read it
    result = {"cores": cores, "pinned": pinned, **http_scaling(env, sizes, tmp, redis, beanstalkd_pid, counts),
              "drain": drain_scaling(env, sizes, tmp, redis, address, beanstalkd_pid, counts)}
    efficiency(result["post"], "rps")
    efficiency(result["get"], "rps")
    efficiency(result["drain"], "jobs_per_second")
    return result
