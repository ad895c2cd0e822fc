"""`make demo`: the original's simulation steps against a running stack, narrated; exits 1 when a step
does not behave as the README says, so it doubles as a smoke test of a deployed stack.

What it expects follows the stack's own workers: their settings come from GET /queue (each worker's
heartbeat), not from this shell, which under `make dev` is not what the containers read."""

import json
import os
import sys
import time
import uuid
from typing import TextIO

from lib.devtools.pace import Pace, about
from lib.devtools.run_local import read_env_file
from lib.devtools.stack import FINISHED, START_THE_STACK, Stack, StepFailed


class Demo:
    """The steps, each printing what it sends and gets, against the stack at base_url."""

    def __init__(self, base_url: str, out: TextIO = sys.stdout):
        self.stack = Stack(base_url)
        self.base = self.stack.base
        self.run_id = uuid.uuid4().hex[:6]  # fresh users each run, so a rerun is not rate-limited
        self.out = out
        self.pace = None  # the workers', once step 1 has read it from GET /queue
        self.failed = None  # a FAILED payment met on the way, for step 4

    def say(self, text: str = "") -> None:
        """Print a line of the narration."""
        print(text, file=self.out, flush=True)

    def expect(self, condition: bool, message: str) -> None:
        """Fail the step with message unless condition holds."""
        if not condition:
            raise StepFailed(message)

    def endings(self) -> set[str]:
        """How the workers' payments may end, given their FAILURE_RATE."""
        if self.pace.no_payment_fails:
            return {"COMPLETED"}
        return {"FAILED"} if self.pace.every_payment_fails else {"COMPLETED", "FAILED"}

    def health(self) -> None:
        """Step 1: /health, /ready, and the workers that will take the payments."""
        self.say(f"$ curl {self.base}/health")
        status, _, body = self.stack.call("GET", "/health")
        self.say(f"{status} {json.dumps(body)}")
        self.expect((status, body) == (200, {"status": "OK"}), "/health did not answer 200 {\"status\": \"OK\"}")
        status, _, body = self.stack.call("GET", "/ready")
        self.say(f"GET /ready: {status} {json.dumps(body)}")
        self.expect(status == 200, "/ready says a dependency is down")
        workers = self.stack.workers()
        self.expect(workers, f"no worker is running (GET /queue lists none): {START_THE_STACK}")
        self.pace = Pace.of(workers)
        self.say(f"GET /queue: {self.pace.describe()}")

    def outcome_title(self) -> str:
        """What step 2 shows, given the workers' FAILURE_RATE."""
        if self.pace.every_payment_fails:
            return f"One payment, PENDING to FAILED (FAILURE_RATE=1: each of its {self.pace.max_attempts} " \
                   "attempts is declined)"
        if self.pace.no_payment_fails:
            return "One payment, PENDING to COMPLETED"
        return "One payment, PENDING to COMPLETED or FAILED (FAILURE_RATE above 0: attempts may be declined)"

    def one_payment(self) -> None:
        """Step 2: one payment to its end, with the time of each status; it ends as the workers' settings say."""
        user, ahead = f"demo-{self.run_id}", self.stack.ahead()
        self.say(f"$ {self.stack.curl_post(user)}")
        status, headers, body = self.stack.post(user)
        self.say(f"{status} Location: {headers.get('Location')}\n{json.dumps(body)}")
        self.expect(status == 201 and body["data"]["status"] == "PENDING", "the payment was not accepted as PENDING")
        if ahead >= self.pace.threads:  # every thread is busy: it waits its turn
            self.say(f"  {ahead} job(s) were queued ahead of it for {self.pace.threads} worker thread(s): it waits "
                     f"{about(self.pace.seconds(0, ahead))} for its turn")
        payment, seen = self.stack.wait_until_finished(body["data"]["id"], self.pace.patience(1, ahead))
        self.say("  PENDING when accepted  ->  " + "  ->  ".join(f"{state} at +{s:.2f} s" for s, state in seen))
        self.say(f"$ curl {self.base}{headers['Location']}\n{json.dumps(payment)}")
        self.expect(payment["status"] in self.endings(), f"the payment ended {payment['status']}")
        if payment["status"] == "FAILED":
            self.failed = payment
            self.say(f"  FAILED after {payment['attempts']} attempt(s): {payment['failure_reason']}")

    def batch(self) -> None:
        """Step 3: a payment per worker thread (3 to 5) at once, watched through GET /queue until all are finished."""
        pace, size = self.pace, self.pace.batch_size()
        how = "all at once" if pace.threads >= size else f"{pace.threads} at a time, the others waiting in the queue"
        self.say(f"{size} payments at once for {pace.threads} worker thread(s) in {pace.processes} process(es): "
                 f"they run {how}; {about(pace.seconds(size))}")
        answers = self.stack.post_at_once([f"demo-{self.run_id}-{n}" for n in range(size)])
        ids = [body["data"]["id"] for status, _, body in answers if status == 201]
        self.expect(len(ids) == size, f"only {len(ids)} of {size} payments were accepted")
        self.say("GET /queue and the payments, each time they change:")
        started, last, ended = time.monotonic(), None, []
        while time.monotonic() - started < pace.patience(size):
            jobs = self.stack.queue()["jobs"]
            payments = (self.stack.call("GET", f"/payments/{i}")[2] for i in ids)
            ended = [payment for payment in payments if payment["status"] in FINISHED]
            now = f"{json.dumps(jobs)}  finished {len(ended)}/{size}"
            if now != last:
                self.say(f"  +{time.monotonic() - started:5.2f} s  {now}")
                last = now
            if len(ended) == size:
                done = [json.dumps(worker["jobs_done"]) for worker in self.stack.next_beat()]
                self.say(f"  jobs done, by each worker: {'; '.join(done)}")
                self.failed = self.failed or next((p for p in ended if p["status"] == "FAILED"), None)
                statuses = {payment["status"] for payment in ended}
                self.expect(statuses <= self.endings(), f"the batch ended {', '.join(sorted(statuses))}")
                return
            time.sleep(0.2)
        raise StepFailed(f"{size - len(ended)} of the batch never finished within {pace.patience(size):.0f} s")

    def failure(self) -> None:
        """Step 4: with FAILURE_RATE above 0, a payment that ends FAILED, with its reason."""
        if self.pace.no_payment_fails:
            self.say("skipped: the workers run with FAILURE_RATE=0. To see a payment declined, retried and FAILED, "
                     "start the stack with FAILURE_RATE=1 make run (make dev: FAILURE_RATE=1 in .env), then make demo.")
            return
        if self.failed is not None:
            self.say("One has failed already in this demo:")
        for attempt in range(10):  # else, new payments until one is declined at every attempt
            if self.failed is not None:
                break
            payment_id = self.stack.post(f"demo-{self.run_id}-fail-{attempt}")[2]["data"]["id"]
            payment, _ = self.stack.wait_until_finished(payment_id, self.pace.patience(1))
            self.failed = payment if payment["status"] == "FAILED" else None
        self.expect(self.failed is not None, "ten payments in a row completed")
        self.say(f"$ curl {self.base}/payments/{self.failed['id']}\n{json.dumps(self.failed)}")
        self.expect(self.failed["failure_reason"] and self.failed["attempts"] >= 1, "FAILED without a reason")
        buried = self.stack.queue()["jobs"]["buried"]
        self.say(f"Its job is buried in beanstalkd, where the console on :8902 shows it (GET /queue: buried {buried}).")

    def rate_limit(self) -> None:
        """Step 5: the original's loop of quick payments: RATE_LIMIT x 201, then 429s."""
        user = f"demo-{self.run_id}-burst"
        first = self.stack.post(user)
        limit = int(first[1]["RateLimit-Policy"].split("q=")[1].split(";")[0])
        answers = [first] + [self.stack.post(user) for _ in range(limit + 4)]
        self.say(f"{len(answers)} quick payments for {user} (RateLimit-Policy: {first[1]['RateLimit-Policy']}):")
        for n, (status, headers, body) in enumerate(answers, start=1):
            extra = f"Retry-After: {headers['Retry-After']} {json.dumps(body)}" if status == 429 else ""
            self.say(f"  {n:2}: {status} RateLimit: {headers['RateLimit']} {extra}")
        statuses = [status for status, _, _ in answers]
        self.expect(statuses == [201] * limit + [429] * (len(statuses) - limit),
                    f"expected {limit} x 201 then 429s, got {statuses}")
        self.expect(answers[-1][2] == {"error": "Rate limit exceeded. Try again later."}, "wrong 429 text")
        self.say(f"The {limit} accepted are queued; the workers finish them after this demo, in "
                 f"{about(self.pace.seconds(limit))}.")

    def estimate(self) -> float:
        """About how long steps 2 to 5 take, from the workers' pace and the jobs already queued."""
        pace = self.pace
        seconds = pace.seconds(1, self.stack.ahead()) + pace.seconds(pace.batch_size()) + 2
        if not (pace.no_payment_fails or pace.every_payment_fails):  # step 4 tries until one fails
            seconds += min(10, 1 / pace.highest_failure_rate ** pace.max_attempts) * pace.seconds(1)
        return seconds

    def run(self) -> int:
        """Every step in order; 0 when all behaved as the README says, else 1."""
        started = time.monotonic()
        steps = [(lambda: "Health, and the workers", self.health), (self.outcome_title, self.one_payment),
                 (lambda: "A batch, watched through /queue", self.batch), (lambda: "A declined payment", self.failure),
                 (lambda: "The rate limit", self.rate_limit)]
        for number, (title, step) in enumerate(steps, start=1):
            self.say(f"\n== {number}. {title()}")
            try:
                step()
                if number == 1:
                    self.say(f"\nThis demo takes {about(self.estimate())} with these workers and this queue.")
            except (StepFailed, KeyError, ValueError) as error:
                self.say(f"\nFAILED at step {number} ({title()}): {error}")
                return 1
        self.say(f"\nEvery step behaved as the README says ({time.monotonic() - started:.0f} s).")
        return 0


def main() -> int:
    """Run the demo against API_URL, else http://localhost:PORT (8000), settings read as `make run` reads them."""
    settings = read_env_file(".env", os.environ)
    return Demo(settings.get("API_URL") or f"http://localhost:{settings.get('PORT') or 8000}").run()


if __name__ == "__main__":
    sys.exit(main())
