"""The /metrics page: counters kept in Redis by the scripts that make each change, gauges read on
demand, and this process's request-duration histogram, written out in Prometheus text format 0.0.4."""

import bisect
import threading
from collections.abc import Iterator

# The fields of the counters hash (lib/store/keys.py), which the Lua scripts update in the same
# atomic step as the change they count: the figures add up across API and worker processes and
# cost no extra round trip.
COUNTERS = [
    ("payments_created", "Payments accepted by the API."),
    ("payments_completed", "Payments the worker completed."),
    ("payments_failed", "Payments that ran out of attempts."),
    ("payments_retried", "Declined attempts put back for a retry."),
    ("rate_limited", "POST /payments requests refused by the rate limit."),
    ("idempotent_replays", "POST /payments requests answered from an Idempotency-Key record."),
]
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: object) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs):
    return "{" + ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs) + "}" if pairs else ""


class RequestDurations:
    """A histogram of request durations per (method, route) for this process; thread-safe."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS):
        self.buckets = buckets
        self._series = {}  # (method, route) -> [count per bucket (non-cumulative) ..., +Inf], sum
        self._lock = threading.Lock()

    def observe(self, method: str, route: str, seconds: float) -> None:
        """Count one request that took `seconds`."""
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            counts, total = self._series.get((method, route), ([0] * (len(self.buckets) + 1), 0.0))
            counts[index] += 1
            self._series[(method, route)] = (counts, total + seconds)

    def samples(self) -> Iterator[tuple[list[tuple[str, str]], list[int], float]]:
        """(labels, cumulative bucket counts with +Inf last, sum) for every series."""
        with self._lock:
            series = {key: (list(counts), total) for key, (counts, total) in self._series.items()}
        for (method, route), (counts, total) in sorted(series.items()):
            cumulative, running = [], 0
            for count in counts:
                running += count
                cumulative.append(running)
            yield [("method", method), ("route", route)], cumulative, total


def render(counters: dict[str, int], status_counts: dict[str, int], queue_counts: dict[str, int],
           durations: "RequestDurations") -> str:
    """The whole /metrics page: HELP and TYPE before each family's samples."""
    lines = []

    def family(name, kind, help_text, samples):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{_labels(labels)} {value}" for labels, value in samples)

    for field, help_text in COUNTERS:
        family(f"paypoc_{field}_total", "counter", help_text, [([], int(counters.get(field, 0)))])
    family("paypoc_payments", "gauge", "Payments by status, now.",
           [([("status", status)], int(status_counts.get(status, 0)))
            for status in ("PENDING", "PROCESSING", "COMPLETED", "FAILED")])
    family("paypoc_queue_jobs", "gauge", "Jobs in the beanstalkd tube by state, now.",
           [([("state", state)], queue_counts[state]) for state in ("ready", "reserved", "delayed", "buried")])
    name = "paypoc_http_request_duration_seconds"
    lines += [f"# HELP {name} Time to answer a request, in this API process.", f"# TYPE {name} histogram"]
    for labels, cumulative, total in durations.samples():
        edges = [*(format(bound, "g") for bound in durations.buckets), "+Inf"]
        lines += [f"{name}_bucket{_labels(labels + [('le', edge)])} {count}" for edge, count in zip(edges, cumulative)]
        lines += [f"{name}_sum{_labels(labels)} {total:.6f}", f"{name}_count{_labels(labels)} {cumulative[-1]}"]
    return "\n".join(lines) + "\n"
