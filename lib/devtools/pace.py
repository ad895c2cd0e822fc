"""How long payments take on a running stack, worked out from its workers' heartbeats (GET /queue):
what `make demo` expects, how long it says it will take, and how long it waits before giving up."""

import math
from typing import NamedTuple

MAX_BATCH, MIN_BATCH = 5, 3  # payments `make demo` sends at once: enough to queue, few enough to watch


class Pace(NamedTuple):
    """The workers' threads and the settings that decide how long a payment takes and how it ends."""

    processes: int
    threads: int  # across every worker process
    processing_delay: float  # seconds an attempt takes
    lowest_failure_rate: float
    highest_failure_rate: float
    max_attempts: int
    retry_delay: float

    @classmethod
    def of(cls, workers: list[dict]) -> "Pace":
        """The pace of the live workers GET /queue lists; where they differ, the slowest settings."""
        settings = [worker["settings"] for worker in workers]
        rates = [s["failure_rate"] for s in settings]
        return cls(len(workers), sum(worker["threads"] for worker in workers),
                   max(s["processing_delay"] for s in settings), min(rates), max(rates),
                   max(s["max_attempts"] for s in settings), max(s["retry_delay"] for s in settings))

    @property
    def every_payment_fails(self) -> bool:
        """FAILURE_RATE=1 on every worker: each attempt is declined, so each payment ends FAILED."""
        return self.lowest_failure_rate >= 1

    @property
    def no_payment_fails(self) -> bool:
        """FAILURE_RATE=0 on every worker: each payment ends COMPLETED at its first attempt."""
        return self.highest_failure_rate <= 0

    def _retry_waits(self, worst: bool) -> float:
        """Seconds a payment waits between attempts: the backoff before attempt k+1 is
        RETRY_DELAY x 2^(k-1), its upper half at random, in whole seconds (lib/worker/jobs.py)."""
        total = 0.0
        for k in range(1, self.max_attempts):  # the wait after attempt k, if it was declined
            ceiling = self.retry_delay * 2 ** (k - 1)
            if worst:
                total += math.ceil(ceiling)
            else:
                total += self.highest_failure_rate ** k * _mean_whole_seconds(ceiling / 2, ceiling)
        return total

    def work(self, worst: bool = False) -> float:
        """Seconds of a worker thread one payment takes: PROCESSING_DELAY for each attempt it gets."""
        rate = 1 if worst else self.highest_failure_rate
        return self.processing_delay * sum(rate ** k for k in range(self.max_attempts))

    def seconds(self, payments: int, ahead: int = 0, worst: bool = False) -> float:
        """About how long until `payments` sent at once are finished, behind `ahead` jobs queued
        before them: the threads share out the work, and the last payment's retry waits come on top."""
        rounds = math.ceil((ahead + payments) / max(self.threads, 1))
        return rounds * self.work(worst) + self._retry_waits(worst)

    def patience(self, payments: int, ahead: int = 0) -> float:
        """Seconds to wait for them before calling them stuck: twice the worst case, and some."""
        return 2 * self.seconds(payments, ahead, worst=True) + 15

    def batch_size(self) -> int:
        """Payments to send at once: one per thread, from MIN_BATCH (so some wait in the queue) to MAX_BATCH."""
        return min(MAX_BATCH, max(MIN_BATCH, self.threads))

    def describe(self) -> str:
        """The workers and their settings, in a line."""
        rates = f"{self.lowest_failure_rate:g}" if self.lowest_failure_rate == self.highest_failure_rate else \
            f"{self.lowest_failure_rate:g} to {self.highest_failure_rate:g}"
        return (f"{self.processes} worker process(es), {self.threads} thread(s) in all; "
                f"PROCESSING_DELAY={self.processing_delay:g}, FAILURE_RATE={rates}, "
                f"MAX_ATTEMPTS={self.max_attempts}, RETRY_DELAY={self.retry_delay:g}")


def _mean_whole_seconds(low, high):
    """The mean of a time drawn evenly from low to high seconds, then rounded up to whole seconds."""
    if high <= low:
        return math.ceil(high)
    whole = range(math.floor(low) + 1, math.ceil(high) + 1)  # each n takes the times in (n-1, n]
    return sum(n * (min(n, high) - max(n - 1, low)) for n in whole) / (high - low)


def about(seconds: float) -> str:
    """A duration as a person says it: "about 25 s", "about 2 min"."""
    if seconds < 90:
        return f"about {max(5, 5 * math.ceil(seconds / 5))} s"
    return f"about {math.ceil(seconds / 60)} min"
