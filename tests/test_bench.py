"""`make bench` runs end to end (tiny sizes): every figure is measured and written out."""

import json
import subprocess
import sys

from lib.devtools.processes import ROOT


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
