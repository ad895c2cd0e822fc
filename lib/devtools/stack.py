"""A running stack as `make demo` sees it over HTTP: requests, payments followed to their end, and
the workers' heartbeats on GET /queue; a stack that does not answer says how to start one."""

import json
import shlex
import threading
import time

from lib.devtools.processes import http

FINISHED = ("COMPLETED", "FAILED")
START_THE_STACK = "start the stack first: make run (or make dev)"


class StepFailed(Exception):
    """A step did not behave as documented."""


class Stack:
    """The API at base_url, spoken to with the standard library only."""

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, object]:
        """(status, headers, decoded JSON body) of one request."""
        try:
            return http(method, self.base + path, body)
        except OSError as error:
            raise StepFailed(f"no answer from {self.base}{path} ({error}): {START_THE_STACK}") from None

    def post(self, user: str) -> tuple[int, dict, object]:
        """POST /payments with the walkthrough's body (its key spelled user_Id, as the original sends it)."""
        return self.call("POST", "/payments", {"user_Id": user, "amount": 1500, "currency": "XAF"})

    def post_at_once(self, users: list[str]) -> list[tuple[int, dict, object]]:
        """One POST for each user, all sent at the same time."""
        answers = []
        threads = [threading.Thread(target=lambda user=user: answers.append(self.post(user))) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    def curl_post(self, user: str) -> str:
        """The curl command that sends the same POST, to copy and paste."""
        body = json.dumps({"user_Id": user, "amount": 1500, "currency": "XAF"})
        return f'curl -X POST {self.base}/payments -H "Content-Type: application/json" -d {shlex.quote(body)}'

    def queue(self) -> dict:
        """GET /queue: the tube's jobs by state and the live workers."""
        return self.call("GET", "/queue")[2]

    def ahead(self) -> int:
        """Jobs a new job would queue behind: ready, or in a worker's hands (a delayed one, waiting
        for its retry, comes back later and takes its turn then)."""
        jobs = self.queue()["jobs"]
        return jobs["ready"] + jobs["reserved"]

    def workers(self, grace: float = 3) -> list[dict]:
        """The live workers; one that has just started gets `grace` seconds to write its heartbeat."""
        deadline = time.monotonic() + grace
        while not (workers := self.queue()["workers"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        return workers

    def next_beat(self) -> list[dict]:
        """The workers once each has beaten again (every 2 s), so that their counts are up to date."""
        before = {worker["id"]: worker["last_seen"] for worker in self.queue()["workers"]}
        deadline = time.monotonic() + 5
        while (workers := self.queue()["workers"]) and time.monotonic() < deadline:
            if all(worker["last_seen"] != before.get(worker["id"]) for worker in workers):
                break
            time.sleep(0.2)
        return workers

    def wait_until_finished(self, payment_id: str, patience: float) -> tuple[dict, list]:
        """Poll the payment until COMPLETED or FAILED; return it and each (seconds, status) it moved to.

        Gives up as soon as GET /queue lists no live worker (nothing would ever take the job),
        and after `patience` seconds otherwise.
        """
        started, seen, payment, next_look = time.monotonic(), [(0.0, "PENDING")], None, time.monotonic() + 1
        while time.monotonic() - started < patience:
            payment = self.call("GET", f"/payments/{payment_id}")[2]
            if seen[-1][1] != payment["status"]:
                seen.append((time.monotonic() - started, payment["status"]))
            if payment["status"] in FINISHED:
                return payment, seen[1:]
            if time.monotonic() >= next_look:  # once a second is enough to notice
                if not self.queue()["workers"]:
                    raise StepFailed(f"payment {payment_id} is {payment['status']} and no worker is running "
                                     f"(GET /queue lists none): {START_THE_STACK}")
                next_look = time.monotonic() + 1
            time.sleep(0.1)
        raise StepFailed(f"payment {payment_id} still {payment['status']} after {patience:.0f} s")
