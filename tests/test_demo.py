"""`make demo` narrates the original's steps against a running stack and fails loudly when one misbehaves."""

import os
import subprocess
import sys
import time

from lib.devtools.local_servers import free_port
from lib.devtools.processes import ROOT


def demo(api_url, **settings):
    result = subprocess.run([sys.executable, "-m", "lib.devtools.demo"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "API_URL": api_url, **{k: str(v) for k, v in settings.items()}})
    return result.returncode, result.stdout


def test_every_step_passes_against_a_working_stack(api, launch):
    launch("paypoc_worker.py", max_workers=5, processing_delay=0.2)
    code, transcript = demo(api)
    assert code == 0, transcript
    for line in ["== 1. Health", '200 {"status": "OK"}', "COMPLETED at +", "429 RateLimit:",
                 '{"error": "Rate limit exceeded. Try again later."}', "finished 5/5", "Every step behaved"]:
        assert line in transcript
    assert "skipped: FAILURE_RATE is 0" in transcript


def test_with_failures_switched_on_it_shows_a_failed_payment(api, launch):
    launch("paypoc_worker.py", max_workers=5, processing_delay=0, failure_rate=1, retry_delay=0, max_attempts=2)
    code, transcript = demo(api, FAILURE_RATE=1)
    assert code == 0, transcript
    assert '"status": "FAILED", "attempts": 2, "failure_reason": "declined by the simulated processor"' in transcript


def test_no_api_fails_at_the_first_step():
    code, transcript = demo(f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "FAILED at step 1 (Health): no answer from" in transcript


def test_a_stack_without_a_worker_fails_at_the_second_step_at_once(api):
    started = time.monotonic()
    code, transcript = demo(api)
    assert code == 1 and "FAILED at step 2" in transcript and "no worker is running" in transcript
    assert time.monotonic() - started < 15  # it does not wait out DEMO_TIMEOUT
