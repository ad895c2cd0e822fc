"""`make bench` runs end to end (tiny sizes): every figure is measured and written out."""

import json

from tests import bench


def test_the_bench_runs_and_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--smoke", "--out", str(out)])
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
