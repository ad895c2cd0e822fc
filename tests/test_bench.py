"""`make bench` runs end to end (tiny sizes): every figure is measured and written out, the cluster's too."""

import json
import subprocess
import sys

from lib.devtools.bench.scaling import process_counts
from lib.devtools.processes import ROOT
from lib.runtime.config import available_cores


def test_the_bench_runs_and_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "lib.devtools.bench", "--smoke", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| measure | value | target | met |" in result.stdout
    figures = json.loads(out.read_text())
    for subject in ("hello", "hello_hgetall", "post", "get", "list"):
        assert figures["http"][subject]["rps"] > 0 and figures["http"][subject]["errors"] == 0
        assert figures["http"][subject]["cpu_us_per_request"] > 0  # the server's own, read from /proc
        assert figures["http"][subject]["switches_per_request"] > 0
    assert figures["http"]["post"]["ratio_to_hello"] > 0
    assert figures["drain"]["worker_jobs_per_second"] > 0 and figures["drain"]["raw_jobs_per_second"] > 0
    assert figures["drain"]["round_trips_jobs_per_second"] > 0
    assert figures["drain"]["status_changes_jobs_per_second"] > 0
    assert 0 < figures["efficiency"]["efficiency"] <= 1.2
    assert figures["api_memory"]["requests"] >= 2000 and figures["api_memory"]["peak_mb"] > 10
    assert figures["memory_per_payment_bytes"] > 100
    check_scaling(figures["scaling"], result.stdout)
    check_cluster(figures["cluster"], result.stdout)


def check_scaling(scaling, printed):
    """Rates with 1 to N processes, their efficiencies, and each operation's costs, all measured."""
    counts = process_counts(available_cores())
    assert scaling["cores"] == available_cores() and counts[0] == 1
    for name, rate in (("post", "rps"), ("get", "rps"), ("drain", "jobs_per_second")):
        rows = scaling[name]
        assert [row["processes"] for row in rows] == counts
        assert rows[0]["efficiency"] == 1.0
        for row in rows:
            assert row[rate] > 0 and row["efficiency"] > 0
            assert row.get("errors", 0) == 0
            assert row["subject_cpu_us"] > 0 and row["redis_cpu_us"] > 0 and row["beanstalkd_cpu_us"] >= 0
            assert row["cores_busy"]["subject"] > 0 and row["cores_busy"]["redis"] > 0
    for row in scaling["post"] + scaling["get"]:
        assert row["wrk_cpu_us"] > 0  # wrk's own CPU, read from its rusage once it ended
    # Redis's command counts: a POST runs the admission script, a GET reads the hash, a payment takes three scripts.
    assert all(row["redis_scripts"] >= 1 for row in scaling["post"])
    assert all(row["commands"]["hgetall"]["calls"] >= 1 and row["redis_scripts"] < 0.1 for row in scaling["get"])
    assert all(row["redis_scripts"] >= 3 and row["commands"]["evalsha"]["usec"] > 0 for row in scaling["drain"])
    assert f"Scaling on {available_cores()} cores" in printed
    if 2 in counts:
        assert "POST req/s, 2 API processes / 1" in printed


def check_cluster(cluster, printed):
    """One Redis beside three masters: each rate and cost measured, and shares of the CPU and the keys that add up."""
    assert cluster["single"]["masters"] == 1 and cluster["cluster"]["masters"] == 3
    for name in ("single", "cluster"):
        row = cluster[name]
        assert row["post_errors"] == 0
        assert row["post"]["rps"] > 0 and row["drain"]["jobs_per_second"] > 0
        assert row["post"]["redis_cpu_us"] > 0 and row["drain"]["redis_cpu_us"] > 0  # summed over the masters
        # The admission script a POST runs, the three a payment takes (and the sweeper's claims beside them).
        assert row["post"]["scripts"] >= 1 and row["drain"]["scripts"] >= 3
        for shares in (row["post"]["cpu_shares"], row["drain"]["cpu_shares"], row["key_shares"]):
            assert len(shares) == row["masters"] and all(share > 0 for share in shares)
            assert abs(sum(shares) - 1) < 1e-9
    assert set(cluster["spread_met"]) == {"post_cpu", "drain_cpu", "keys"}
    assert "One Redis beside a Redis Cluster of 3 masters" in printed
    assert f"No gain is to be seen on {cluster['cores']} cores" in printed
