"""The cluster part of `make bench`: POST and the drain on a Redis Cluster of three masters beside one
Redis, rounds interleaved; the Redis CPU each costs, summed over the masters, and how evenly the
masters share that CPU and the keys."""

import statistics
from collections import Counter

import greenstalk
import redis as redis_py

from lib.devtools.bench import drain, wrk
from lib.devtools.bench.scaling import CONNECTIONS_PER_PROCESS, WORKER_THREADS, drain_seconds
from lib.devtools.bench.sections import start_api
from lib.devtools.local_cluster import LocalCluster
from lib.devtools.processes import Process, wait_for
from lib.runtime.config import available_cores
from lib.store.redis_client import RedisClient, ThreadRedis, open_redis

MASTERS = 3
SPREAD_TARGET = 0.15  # each master's share within 15 % of 1 / MASTERS


class Topology:
    """One Redis or a cluster: the settings that name it, a client of the project's, and a stock client
    on each master to read INFO and DBSIZE from."""

    def __init__(self, name: str, env: dict, client: RedisClient, masters: list[redis_py.Redis]):
        self.name, self.env, self.client, self.masters = name, env, client, masters

    def usage(self) -> Counter:
        """CPU seconds each master has used so far ("cpu 0"...), and the scripts they have run."""
        spent = Counter()
        for number, master in enumerate(self.masters):
            cpu, commands = master.info("cpu"), master.info("commandstats")
            spent[f"cpu {number}"] = cpu["used_cpu_sys"] + cpu["used_cpu_user"]
            spent["scripts"] += sum(commands.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))
        return spent


def costs(spent: Counter, operations: int, seconds: float, masters: int) -> dict:
    """Redis CPU µs one operation cost, summed over the masters; each master's share of it; scripts per
    operation; and how busy the masters were, in cores."""
    cpu = [spent[f"cpu {number}"] for number in range(masters)]
    total = sum(cpu) or 1e-9
    return {"redis_cpu_us": total * 1e6 / max(operations, 1), "cpu_shares": [part / total for part in cpu],
            "scripts": spent["scripts"] / max(operations, 1), "redis_cores_busy": total / seconds}


def post_round(topology: Topology, base: str, seconds: float, cores: int, run: int) -> tuple[dict, Counter]:
    """wrk's POSTs for `seconds`; its summary and what the masters spent meanwhile."""
    before = topology.usage()
    result = wrk.run_wrk(f"{base}/payments", wrk.post_script(run), seconds, connections=CONNECTIONS_PER_PROCESS * cores,
                         threads=max(2, cores // 4))
    return result, Counter({key: value - before[key] for key, value in topology.usage().items()})


def drain_round(topology: Topology, count: int, address: tuple, tmp: str, tube: str, cores: int) -> tuple[float, Counter]:
    """count payments of as many users queued, then drained by `cores` worker processes (no delay);
    the seconds it took from the moment the tube opened, and what the masters spent meanwhile."""
    topology.client.flushall()
    drain.queue_payments(topology.client, address, tube, count, users=count)
    with greenstalk.Client(address) as client:
        client.pause_tube(tube, 3600)  # opened once every worker thread waits on it
        worker = Process(["paypoc_worker.py"], {**topology.env, "BEANSTALK_TUBE": tube, "WORKER_PROCESSES": str(cores),
                                                "MAX_WORKERS": str(WORKER_THREADS), "PROCESSING_DELAY": "0"},
                         f"{tmp}/drain-{topology.name}.log")
        try:
            assert wait_for(lambda: client.stats_tube(tube)["current-waiting"] >= cores * WORKER_THREADS, 30), \
                f"the worker threads did not start: see {tmp}/drain-{topology.name}.log"
            before = topology.usage()
            client.pause_tube(tube, 0)
            took = drain_seconds(client, tube)
            return took, Counter({key: value - before[key] for key, value in topology.usage().items()})
        finally:
            worker.stop()


def measure(topologies: list[Topology], sizes: dict, tmp: str, address: tuple, cores: int) -> dict:
    """POST and the drain on each topology, round by round; then each master's share of the keys."""
    apis = {t.name: start_api({**t.env, "API_PROCESSES": str(cores), "API_PIN_CPUS": "yes"}, tmp, f"api-{t.name}") for t in topologies}
    rates = {(t.name, op): [] for t in topologies for op in ("post", "drain")}
    spent = {key: Counter() for key in rates}
    operations, seconds, errors, keys = Counter(), Counter(), Counter(), {}
    try:
        for t in topologies:
            wrk.run_wrk(f"{apis[t.name][1]}/payments", wrk.post_script(8000), 1)  # warm up every process
        for round_ in range(sizes["rounds"]):
            for t in topologies:
                result, used = post_round(t, apis[t.name][1], sizes["seconds"], cores, 8100 + round_)
                rates[t.name, "post"].append(result["rps"])
                spent[t.name, "post"] += used
                operations[t.name, "post"] += result["requests"]
                seconds[t.name, "post"] += result["seconds"]
                errors[t.name] += result["errors"] + result["non2xx"]
                keys[t.name] = [master.dbsize() for master in t.masters]  # the payments just taken, and their users'
            for t in topologies:
                took, used = drain_round(t, sizes["drain_jobs"], address, tmp, f"bench-cluster-{t.name}-{round_}", cores)
                rates[t.name, "drain"].append(sizes["drain_jobs"] / took)
                spent[t.name, "drain"] += used
                operations[t.name, "drain"] += sizes["drain_jobs"]
                seconds[t.name, "drain"] += took
    finally:  # a failed measurement leaves no API serving
        for api, _ in apis.values():
            api.stop()
    result = {}
    for t in topologies:
        result[t.name] = {"masters": len(t.masters), "post_errors": errors[t.name],
                          "keys": keys[t.name], "key_shares": [count / max(sum(keys[t.name]), 1) for count in keys[t.name]]}
        for op, rate in (("post", "rps"), ("drain", "jobs_per_second")):
            result[t.name][op] = {rate: statistics.median(rates[t.name, op]),
                                  **costs(spent[t.name, op], operations[t.name, op], seconds[t.name, op], len(t.masters))}
    return result


def within_target(shares: list[float]) -> bool:
    """True when every share is within SPREAD_TARGET of an even split."""
    even = 1 / len(shares)
    return all(abs(share - even) <= SPREAD_TARGET * even for share in shares)


def cluster_section(env: dict, sizes: dict, tmp: str, redis: ThreadRedis, address: tuple) -> dict:
    """One Redis (the bench's own) against a cluster of three masters of the same redis-server, the same
    beanstalkd serving both: every difference is Redis's."""
    cores = available_cores()
    cluster = LocalCluster(f"{tmp}/cluster", masters=MASTERS).start()
    try:
        single = Topology("single", {**env, "REDIS_CLUSTER": "no"}, redis,
                          [redis_py.Redis(connection_pool=redis.connection_pool)])
        nodes = [redis_py.Redis(host="127.0.0.1", port=node.port) for node in cluster.nodes]
        on_cluster = Topology("cluster", {**env, "REDIS_URL": cluster.url, "REDIS_CLUSTER": "yes"},
                              open_redis(cluster.url, timeout=30, cluster=True), nodes)
        result = {"cores": cores, **measure([single, on_cluster], sizes, tmp, address, cores)}
    finally:
        cluster.stop()
    spread = result["cluster"]
    result["spread_met"] = {name: within_target(shares) for name, shares in
                            (("post_cpu", spread["post"]["cpu_shares"]), ("drain_cpu", spread["drain"]["cpu_shares"]),
                             ("keys", spread["key_shares"]))}
    return result
