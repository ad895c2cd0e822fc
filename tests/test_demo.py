"""`make demo` narrates the original's steps against a running stack, expects what the stack's own
workers will do, and fails loudly, saying what to do, when a step misbehaves."""

import json
import os
import re
import subprocess
import sys
import time

from lib.devtools.local_servers import free_port
from lib.devtools.pace import Pace, about
from lib.devtools.processes import ROOT, http

# Each test asks for `redis`, which empties the database: a worker killed at the end of the test
# before would be listed on GET /queue until its heartbeat expired.


def demo(**settings):
    """Run `make demo`'s module with settings in its environment; (exit status, transcript)."""
    result = subprocess.run([sys.executable, "-m", "lib.devtools.demo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=180, env={**os.environ, **{k: str(v) for k, v in settings.items()}})
    return result.returncode, result.stdout


def step(transcript, number):
    """The lines of one step of the transcript, its title first."""
    return transcript.split(f"\n== {number}. ")[1].split("\n== ")[0].splitlines()


def shell(command):
    """Run a command line as a user pasting it would; its output."""
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True).stdout


def test_every_step_passes_against_a_working_stack_and_its_curls_work_when_copied(redis, api, launch):
    launch("paypoc_worker.py", max_workers=5, processing_delay=0.2)
    code, transcript = demo(API_URL=api)
    assert code == 0, transcript
    for line in ["== 1. Health", '200 {"status": "OK"}', "1 worker process(es), 5 thread(s) in all",
                 "== 2. One payment, PENDING to COMPLETED", "COMPLETED at +", "finished 5/5",
                 "429 RateLimit:", '{"error": "Rate limit exceeded. Try again later."}', "Every step behaved"]:
        assert line in transcript
    assert re.search(r"\nThis demo takes about \d+ s with these workers and this queue\.\n", transcript)
    assert "skipped: the workers run with FAILURE_RATE=0" in transcript
    # The worker's jobs done by outcome, from a heartbeat after the batch: step 2's payment and the batch's five.
    assert int(re.search(r'jobs done, by each worker: \{"completed": (\d+)', transcript).group(1)) >= 5
    # The curls it prints work as they are: pasted into a shell, the POST gets a 201 and the GET the payment.
    post, get = [line[2:] for line in step(transcript, 2) if line.startswith("$ curl")]
    assert '-H "Content-Type: application/json"' in post
    assert json.loads(shell(post))["status"] == "success"
    assert json.loads(shell(get))["status"] == "COMPLETED"


def test_it_says_why_a_payment_waits_and_prints_queue_lines_only_when_something_changes(redis, api, launch):
    launch("paypoc_worker.py", max_workers=1, processing_delay=1)
    for _ in range(4):  # a backlog, as the README's loop leaves one
        assert http("POST", f"{api}/payments", {"userId": "test", "amount": 100, "currency": "XAF"})[0] == 201
    code, transcript = demo(API_URL=api)
    assert code == 0, transcript
    assert re.search(r"\n  [2-4] job\(s\) were queued ahead of it for 1 worker thread\(s\): it waits about \d+ s",
                     "\n".join(step(transcript, 2)))
    batch = step(transcript, 3)
    assert "3 payments at once for 1 worker thread(s) in 1 process(es): they run 1 at a time" in batch[1]
    watched = [line.split("s  ", 1)[1] for line in batch if line.startswith("  +")]
    assert watched[-1].endswith("finished 3/3")
    assert all(before != after for before, after in zip(watched, watched[1:])), batch


def test_with_failure_rate_1_on_the_workers_every_step_passes_and_says_each_payment_failed(redis, api, launch):
    # The defaults but shorter: one worker thread, three attempts, backoffs of a second. Only the
    # worker has FAILURE_RATE: the demo learns it from the stack, as it must under make dev.
    launch("paypoc_worker.py", failure_rate=1, processing_delay=0.3, retry_delay=0.5, max_attempts=3)
    code, transcript = demo(API_URL=api, FAILURE_RATE=0)
    assert code == 0, transcript
    outcome = step(transcript, 2)
    assert outcome[0] == "One payment, PENDING to FAILED (FAILURE_RATE=1: each of its 3 attempts is declined)"
    assert "FAILED at +" in "\n".join(outcome) and "COMPLETED" not in "\n".join(outcome)
    assert "  FAILED after 3 attempt(s): declined by the simulated processor" in outcome
    assert "finished 3/3" in "\n".join(step(transcript, 3))
    declined = "\n".join(step(transcript, 4))
    assert '"status": "FAILED", "attempts": 3, "failure_reason": "declined by the simulated processor"' in declined
    assert "Every step behaved" in transcript


def test_with_nothing_running_it_says_to_start_the_stack_first():
    port = free_port()
    code, transcript = demo(PORT=port)  # no API_URL: the API is looked for on PORT
    assert code == 1
    assert f"FAILED at step 1 (Health, and the workers): no answer from http://localhost:{port}/health" in transcript
    assert transcript.rstrip().endswith("start the stack first: make run (or make dev)")


def test_a_stack_without_a_worker_fails_at_the_first_step_at_once(redis, api):
    started = time.monotonic()
    code, transcript = demo(API_URL=api)
    assert code == 1 and "FAILED at step 1" in transcript and "no worker is running" in transcript
    assert time.monotonic() - started < 15  # it does not wait for a payment nobody will take


def test_the_pace_follows_the_workers_settings():
    defaults = {"processing_delay": 3.0, "failure_rate": 0.0, "max_attempts": 3, "retry_delay": 1.0}
    one_worker = Pace.of([{"threads": 1, "settings": defaults}])
    assert one_worker.no_payment_fails and one_worker.seconds(1) == 3 and one_worker.seconds(1, ahead=5) == 18
    assert one_worker.batch_size() == 3 and Pace.of([{"threads": 4, "settings": defaults}] * 2).batch_size() == 5
    # FAILURE_RATE=1: three attempts of 3 s, with backoffs of 1 s and at most 2 s between them.
    declining = Pace.of([{"threads": 1, "settings": {**defaults, "failure_rate": 1.0}}])
    assert declining.every_payment_fails and declining.seconds(1, worst=True) == 3 * 3 + 1 + 2
    assert declining.seconds(1) == 3 * 3 + 1 + 2  # uniform from 0.5 to 1 s and from 1 to 2 s, rounded up
    assert declining.patience(1) > 2 * declining.seconds(1, worst=True)
    assert about(7) == "about 10 s" and about(44) == "about 45 s" and about(200) == "about 4 min"
