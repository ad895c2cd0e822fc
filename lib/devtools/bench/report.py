"""The table `make bench` prints, with each figure beside the target it is held to."""

# (figure, target, how it is compared): the targets the project holds itself to on 2 cores.
TARGETS = {
    "post_ratio": (0.22, ">="), "get_ratio": (0.35, ">="), "post_p99_ms": (25.0, "<="),
    "drain_ratio": (0.35, ">="), "efficiency": (0.93, ">="),
    "api_peak_mb": (60.0, "<="), "api_growth_mb": (1.0, "<="), "worker_peak_mb": (60.0, "<="),
    "preload_post": (0.9, ">="), "preload_get": (0.9, ">="), "preload_list": (0.9, ">="),
    "scaling_post_2": (1.3, ">="),
}


def _row(name, value, text):
    target, sense = TARGETS[name]
    met = value >= target if sense == ">=" else value <= target
    return f"| {text:<52} | {value:>10.2f} | {sense} {target:<6} | {'yes' if met else 'NO':<4}|"


def _floor_row(value, text):
    """A row with no target: the best the subject could do with its round trips and no other work."""
    return f"| {text:<52} | {value:>10.2f} | none      | -   |"


def table(results: dict) -> str:
    """A Markdown table of the run: the raw figures, then each ratio against its target."""
    http = results["http"]
    lines = ["| subject | req/s | p50 ms | p99 ms | errors | server CPU µs/req | context switches/req |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("hello", "hello_hgetall", "post", "get", "list"):
        r = http[name]
        lines.append(f"| {name:<13} | {r['rps']:8.0f} | {r['p50_ms']:6.2f} | {r['p99_ms']:6.2f} | {r['errors']} "
                     f"| {r['cpu_us_per_request']:5.0f} | {r['switches_per_request']:5.1f} |")
    drain, efficiency, memory = results["drain"], results["efficiency"], results["api_memory"]
    lines += ["", f"worker drain, {drain['jobs']} jobs, 4 threads: {drain['worker_jobs_per_second']:.0f} jobs/s; "
              f"bare reserve/delete loop: {drain['raw_jobs_per_second']:.0f} jobs/s",
              f"bare loop with the two Redis round trips any worker makes (its status changes), nothing done "
              f"in them: {drain['status_changes_jobs_per_second']:.0f} jobs/s "
              f"({drain['status_changes_ratio']:.2f} of the bare loop)",
              f"bare loop with a payment's three Redis round trips, nothing done in them: "
              f"{drain['round_trips_jobs_per_second']:.0f} jobs/s ({drain['round_trips_ratio']:.2f} of the bare loop; "
              f"the worker does {drain['ratio_to_round_trips']:.2f} of it)",
              f"50 threads x 0.2 s, {efficiency['jobs']} jobs: {efficiency['jobs_per_second']:.1f} jobs/s of 250",
              f"API after {memory['requests']} requests: {memory['rss_at_end_mb']:.1f} MB "
              f"(peak {memory['peak_mb']:.1f} MB, {memory['rss_at_half_mb']:.1f} MB at half way)",
              f"Redis memory per stored payment: {results['memory_per_payment_bytes']:.0f} bytes", "",
              "| measure | value | target | met |", "|---|---:|---|---|",
              _row("post_ratio", http["post"]["ratio_to_hello"], "POST /payments req/s / hello-world"),
              _row("get_ratio", http["get"]["ratio_to_hello"], "GET /payments/{id} req/s / hello-world"),
              _floor_row(http["hello_hgetall"]["ratio_to_hello"], "a GET's floor: hello-world after its HGETALL / hello"),
              _row("post_p99_ms", http["post"]["p99_ms"], "POST p99 at 16 connections, ms"),
              _row("drain_ratio", drain["ratio_to_status_changes"], "worker drain / the loop with 2 Redis trips"),
              _floor_row(drain["ratio"], "worker drain / bare greenstalk loop"),
              _row("efficiency", efficiency["efficiency"], "50-thread efficiency (jobs/s / 250)"),
              _row("api_peak_mb", memory["peak_mb"], "API peak RSS, MB"),
              _row("api_growth_mb", memory["growth_second_half_mb"], "API RSS growth in the second half, MB"),
              _row("worker_peak_mb", efficiency["worker_peak_rss_mb_50_threads"], "worker peak RSS at 50 threads, MB")]
    post = results["scaling"]["post"]
    if len(post) > 1 and post[1]["processes"] == 2:
        lines.append(_row("scaling_post_2", post[1]["rps"] / post[0]["rps"], "POST req/s, 2 API processes / 1"))
    if "http_preloaded" in results:
        loaded = results["http_preloaded"]
        lines += [_row("preload_post", loaded["post"]["rps"] / http["post"]["rps"],
                       f"POST req/s with {results['preload']['payments']:,} stored / empty"),
                  _row("preload_get", loaded["get"]["rps"] / http["get"]["rps"],
                       f"GET req/s with {results['preload']['payments']:,} stored / empty"),
                  _row("preload_list", loaded["list"]["rps"] / http["list"]["rps"],
                       f"GET /payments?user_id= with {results['preload']['payments']:,} stored / empty")]
    cluster = cluster_lines(results["cluster"]) if "cluster" in results else []
    return "\n".join(lines + ["", *scaling_lines(results["scaling"]), "", *cluster])


def scaling_lines(scaling: dict) -> list[str]:
    """The rates with 1 to N processes, how busy each program kept the cores, and what one operation costs."""
    post, get, drain = scaling["post"], scaling["get"], scaling["drain"]
    lines = [f"Scaling on {scaling['cores']} cores, API processes {'' if scaling['pinned'] else 'not '}pinned "
             "(API_PIN_CPUS). wrk runs on the same cores as the API, so the API never has them all: the busy "
             "cores below (CPU seconds per second) show what each program took.",
             "| processes | POST req/s | efficiency | GET req/s | efficiency | drain jobs/s | efficiency |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for p, g, d in zip(post, get, drain):
        lines.append(f"| {p['processes']} | {p['rps']:.0f} | {p['efficiency']:.2f} | {g['rps']:.0f} "
                     f"| {g['efficiency']:.2f} | {d['jobs_per_second']:.0f} | {d['efficiency']:.2f} |")
    lines += ["", "| operation | processes | busy cores: API or worker / wrk / Redis / beanstalkd / others "
              "| CPU µs: API or worker | Redis | beanstalkd | wrk | Redis scripts | Redis commands |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name, rows in (("POST", post), ("GET", get), ("payment drained", drain)):
        for row in (rows[0], rows[-1]) if len(rows) > 1 else rows:
            busy = row["cores_busy"]
            lines.append(f"| {name} | {row['processes']} | {busy['subject']:.2f} / {busy['wrk']:.2f} / "
                         f"{busy['redis']:.2f} / {busy['beanstalkd']:.2f} / {busy['others']:.2f} "
                         f"| {row['subject_cpu_us']:.0f} "
                         f"| {row['redis_cpu_us']:.0f} | {row['beanstalkd_cpu_us']:.0f} | {row['wrk_cpu_us']:.0f} "
                         f"| {row['redis_scripts']:.2f} | {row['redis_commands']:.1f} |")
    lines.append("Others: the rest of the machine, this bench's own process included. Redis commands count "
                 "those its scripts run; CPU µs are per operation, at 1 process and at the most measured.")
    return lines


def cluster_lines(cluster: dict) -> list[str]:
    """One Redis beside a cluster of three masters: the rates, what each payment costs Redis, and the spread."""
    single, spread, met = cluster["single"], cluster["cluster"], cluster["spread_met"]
    lines = [f"One Redis beside a Redis Cluster of {spread['masters']} masters (the same redis-server and beanstalkd; "
             f"{cluster['cores']} API and {cluster['cores']} worker processes on each):",
             "| Redis | POST req/s | Redis CPU µs a POST | drain payments/s | Redis CPU µs a payment drained "
             "| Redis busy cores, POST / drain |", "|---|---:|---:|---:|---:|---|"]
    for name, row in (("one Redis", single), (f"{spread['masters']} masters", spread)):
        lines.append(f"| {name} | {row['post']['rps']:.0f} | {row['post']['redis_cpu_us']:.0f} "
                     f"| {row['drain']['jobs_per_second']:.0f} | {row['drain']['redis_cpu_us']:.0f} "
                     f"| {row['post']['redis_cores_busy']:.2f} / {row['drain']['redis_cores_busy']:.2f} |")
    lines += ["", "| master | share of the POSTs' Redis CPU | of the drain's | of the keys |", "|---:|---:|---:|---:|"]
    for number, shares in enumerate(zip(spread["post"]["cpu_shares"], spread["drain"]["cpu_shares"],
                                        spread["key_shares"]), start=1):
        lines.append(f"| {number} | " + " | ".join(f"{share:.1%}" for share in shares) + " |")
    verdict = {True: "yes", False: "NO"}
    lines += [f"Each master within 15 % of a third: POST CPU {verdict[met['post_cpu']]}, drain CPU "
              f"{verdict[met['drain_cpu']]}, keys {verdict[met['keys']]}.",
              f"No gain is to be seen on {cluster['cores']} cores: the API or the worker, wrk and every Redis share them, "
              "and one Redis was not the limit (its busy cores, above, stayed under one). Three masters can only add "
              "cost here (the cluster client routes each command, each master runs its own loop and cluster bus); "
              "what this shows is that cost and how evenly the work spreads. The gain comes when each master has a "
              "core of its own and the API and the workers have the others."]
    return lines
