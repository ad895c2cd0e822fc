"""`make demo`: the original's simulation steps against a running stack, narrated; exits 1 when a step
does not behave as the README says, so it doubles as a smoke test of a deployed stack."""

import json
import os
import sys
import threading
import time
import uuid
from typing import TextIO

from lib.devtools.processes import http
from lib.devtools.run_local import read_env_file


class StepFailed(Exception):
    """A step did not behave as documented."""


class Demo:
    """Talks to the API at base_url with the standard library only, printing what it sends and gets."""

    def __init__(self, base_url: str, settings: dict, out: TextIO = sys.stdout):
        self.base = base_url.rstrip("/")
        self.failure_rate = float(settings.get("FAILURE_RATE") or 0)
        self.timeout = float(settings.get("DEMO_TIMEOUT") or 60)  # seconds a step may wait for payments to finish
        self.run_id = uuid.uuid4().hex[:6]  # fresh users each run, so a rerun is not rate-limited
        self.out = out

    def say(self, text: str = "") -> None:
        """Print a line of the narration."""
        print(text, file=self.out, flush=True)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, object]:
        """(status, headers, decoded JSON body) of one request."""
        try:
            return http(method, self.base + path, body)
        except OSError as error:
            raise StepFailed(f"no answer from {self.base}{path}: {error}") from None

    def expect(self, condition: bool, message: str) -> None:
        """Fail the step with message unless condition holds."""
        if not condition:
            raise StepFailed(message)

    def post(self, user: str, amount: int = 1500, currency: str = "XAF") -> tuple[int, dict, object]:
        """POST /payments with the walkthrough's body (its key spelled user_Id, as the original sends it)."""
        return self.call("POST", "/payments", {"user_Id": user, "amount": amount, "currency": currency})

    def wait_until_finished(self, payment_id: str) -> tuple[dict, list]:
        """Poll the payment until COMPLETED or FAILED; return it and the (seconds, status) it went through.

        Gives up as soon as GET /queue lists no live worker (nothing would ever take the job; a
        worker that has just started gets two seconds to say it is alive), and after
        DEMO_TIMEOUT seconds otherwise.
        """
        started, seen, payment = time.monotonic(), [], None
        next_look = started + 2
        while time.monotonic() - started < self.timeout:
            payment = self.call("GET", f"/payments/{payment_id}")[2]
            if not seen or seen[-1][1] != payment["status"]:
                seen.append((time.monotonic() - started, payment["status"]))
            if payment["status"] in ("COMPLETED", "FAILED"):
                return payment, seen
            if time.monotonic() >= next_look:  # once a second is enough to notice
                if not self.call("GET", "/queue")[2]["workers"]:
                    raise StepFailed(f"payment {payment_id} is {payment['status']} and no worker is running "
                                     "(GET /queue lists none): start the stack with make run or make dev")
                next_look = time.monotonic() + 1
            time.sleep(0.1)
        raise StepFailed(f"payment {payment_id} still {payment['status']} after {self.timeout:.0f} s")

    def health(self) -> None:
        """Step 1: /health and /ready."""
        self.say("$ curl http://localhost:8000/health")
        status, _, body = self.call("GET", "/health")
        self.say(f"{status} {json.dumps(body)}")
        self.expect((status, body) == (200, {"status": "OK"}), "/health did not answer 200 {\"status\": \"OK\"}")
        status, _, body = self.call("GET", "/ready")
        self.say(f"GET /ready: {status} {json.dumps(body)}")
        self.expect(status == 200, "/ready says a dependency is down")

    def one_payment(self) -> None:
        """Step 2: one payment from PENDING to COMPLETED, with the time of each status."""
        user = f"demo-{self.run_id}"
        self.say(f'$ curl -X POST http://localhost:8000/payments -d \'{{"user_Id": "{user}", "amount": 1500, '
                 '"currency": "XAF"}\'')
        status, headers, body = self.post(user)
        self.say(f"{status} Location: {headers.get('Location')}\n{json.dumps(body)}")
        self.expect(status == 201 and body["data"]["status"] == "PENDING", "the payment was not accepted as PENDING")
        payment, seen = self.wait_until_finished(body["data"]["id"])
        self.say("  PENDING when accepted  ->  " + "  ->  ".join(f"{state} at +{seconds:.2f} s" for seconds, state in seen))
        allowed = ("COMPLETED", "FAILED") if self.failure_rate else ("COMPLETED",)
        self.expect(payment["status"] in allowed, f"the payment ended {payment['status']}")

    def rate_limit(self) -> None:
        """Step 3: the original's loop of quick payments: RATE_LIMIT x 201, then 429s."""
        user = f"demo-{self.run_id}-burst"
        first = self.post(user)
        limit = int(first[1]["RateLimit-Policy"].split("q=")[1].split(";")[0])
        answers = [first] + [self.post(user) for _ in range(limit + 4)]
        self.say(f"{len(answers)} quick payments for {user} (RateLimit-Policy: {first[1]['RateLimit-Policy']}):")
        for n, (status, headers, body) in enumerate(answers, start=1):
            extra = f"Retry-After: {headers['Retry-After']} {json.dumps(body)}" if status == 429 else ""
            self.say(f"  {n:2}: {status} RateLimit: {headers['RateLimit']} {extra}")
        statuses = [status for status, _, _ in answers]
        self.expect(statuses == [201] * limit + [429] * (len(statuses) - limit),
                    f"expected {limit} x 201 then 429s, got {statuses}")
        self.expect(answers[-1][2] == {"error": "Rate limit exceeded. Try again later."}, "wrong 429 text")

    def batch(self, size: int = 5) -> None:
        """Step 4: size payments at once, watched through GET /queue until all are finished."""
        payments = []
        threads = [threading.Thread(target=lambda n=n: payments.append(self.post(f"demo-{self.run_id}-{n}")))
                   for n in range(size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids = [body["data"]["id"] for status, _, body in payments if status == 201]
        self.expect(len(ids) == size, f"only {len(ids)} of {size} payments were accepted")
        self.say(f"{size} payments posted at once; GET /queue while they are processed:")
        started, done = time.monotonic(), []
        while time.monotonic() - started < self.timeout:
            queue = self.call("GET", "/queue")[2]
            done = [i for i in ids if self.call("GET", f"/payments/{i}")[2]["status"] in ("COMPLETED", "FAILED")]
            workers = ", ".join(f"{w['host']}:{w['pid']} x{w['threads']}" for w in queue["workers"]) or "none"
            self.say(f"  +{time.monotonic() - started:5.2f} s  {json.dumps(queue['jobs'])}  finished {len(done)}/{size}"
                     f"  workers: {workers}")
            if len(done) == size:
                return
            time.sleep(0.5)
        raise StepFailed(f"{size - len(done)} of the batch never finished")

    def failure(self) -> None:
        """Step 5: with FAILURE_RATE set, a payment that ends FAILED with its reason."""
        if not self.failure_rate:
            self.say("skipped: FAILURE_RATE is 0. Run the stack with FAILURE_RATE=1 (and `make demo` with the same) "
                     "to see a payment fail.")
            return
        for attempt in range(10):
            payment, _ = self.wait_until_finished(self.post(f"demo-{self.run_id}-fail-{attempt}")[2]["data"]["id"])
            if payment["status"] == "FAILED":
                self.say(json.dumps(payment))
                self.expect(payment["failure_reason"] and payment["attempts"] >= 1, "FAILED without a reason")
                return
        raise StepFailed(f"FAILURE_RATE is {self.failure_rate} but ten payments in a row completed")

    def run(self) -> int:
        """Every step in order; 0 when all behaved as the README says, else 1."""
        steps = [("Health", self.health), ("One payment, PENDING to COMPLETED", self.one_payment),
                 ("The rate limit", self.rate_limit), ("A batch in parallel, watched through /queue", self.batch),
                 ("A declined payment", self.failure)]
        for number, (title, step) in enumerate(steps, start=1):
            self.say(f"\n== {number}. {title}")
            try:
                step()
            except (StepFailed, KeyError, ValueError) as error:
                self.say(f"\nFAILED at step {number} ({title}): {error}")
                return 1
        self.say("\nEvery step behaved as the README says.")
        return 0


def main() -> int:
    """Run the demo against API_URL (default http://localhost:8000); settings as `make run` reads them."""
    settings = read_env_file(".env", os.environ)
    return Demo(settings.get("API_URL") or "http://localhost:8000", settings).run()


if __name__ == "__main__":
    sys.exit(main())
