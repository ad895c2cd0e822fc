"""`make bench`: the API and the worker measured beside their baselines in one run; prints a
table and writes the figures as JSON.

python -m lib.devtools.bench [--smoke] [--preload N] [--out PATH]
"""

import argparse
import json
import os
import sys
import tempfile

from lib.devtools.bench import cluster, drain, scaling, sections, wrk
from lib.devtools.bench.report import table
from lib.devtools.local_servers import free_port, local_beanstalkd, local_redis, require
from lib.store.redis_client import open_redis

FULL = {"seconds": 5, "rounds": 3, "rss_requests": 100_000, "drain_jobs": 5000, "efficiency_jobs": 1000}
SMOKE = {"seconds": 1, "rounds": 1, "rss_requests": 2000, "drain_jobs": 200, "efficiency_jobs": 100}


def main(argv: list[str] | None = None) -> dict:
    """Run every measurement on servers of its own; print the table and write the JSON."""
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the bench runs")
    parser.add_argument("--preload", type=int, default=0, help="also measure HTTP with this many payments stored")
    parser.add_argument("--out", default=".run/bench.json", help="where to write the figures as JSON")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    require("wrk")
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, beanstalk_port = free_port(), free_port()
        servers = [local_redis(redis_port, tmp, f"{tmp}/redis.log"), local_beanstalkd(beanstalk_port, f"{tmp}/b.log")]
        for server in servers:
            server.start()
        try:
            redis = open_redis(f"redis://127.0.0.1:{redis_port}/0", timeout=30)
            env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "BEANSTALK_ADDR": f"127.0.0.1:{beanstalk_port}",
                   "LOG_LEVEL": "INFO", "STALE_AFTER": "3600", "API_PROCESSES": "1",
                   "API_PIN_CPUS": "no"}  # one process, free to move between cores, as hello-world is
            results = {"sizes": sizes, "http": sections.http_section(env, sizes, tmp, redis, 1)}
            results["memory_per_payment_bytes"] = sections.memory_per_payment(redis)
            if args.preload:
                results["preload"] = {"payments": args.preload, "seconds": sections.preload(redis, args.preload)}
                results["http_preloaded"] = sections.http_section(env, sizes, tmp, redis, 2)
            results["api_memory"] = sections.rss_section(env, sizes, tmp, redis)
            address = ("127.0.0.1", beanstalk_port)
            results["drain"] = sections.drain_section(env, sizes, tmp, redis, address)
            results["efficiency"] = sections.efficiency_section(env, sizes, tmp, redis, address)
            results["scaling"] = scaling.scaling_section(env, sizes, tmp, redis, address, servers[1].process.pid)
            results["cluster"] = cluster.cluster_section(env, sizes, tmp, redis, address)
        finally:
            for server in servers:
                server.stop()
    print(table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as out:
        json.dump(results, out, indent=2)
    print(f"figures written to {args.out}")
    return results


if __name__ == "__main__":
    # The bench also runs itself in two other roles, as child processes of the run above.
    if sys.argv[1:2] == ["hello"]:  # hello PORT THREADS [REDIS_URL KEY]
        wrk.serve_hello(int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6])
    elif sys.argv[1:2] == ["raw-drain"]:  # raw-drain HOST PORT TUBE THREADS [REDIS_URL TRIPS]
        redis_url, trips = (sys.argv[6], int(sys.argv[7])) if len(sys.argv) > 6 else (None, 0)
        drain.raw_drain(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), redis_url, trips)
    else:
        main()
