"""The /metrics page: counters kept in Redis by the scripts that make each change, gauges read on
demand, and the request-duration histogram of every API process, written out in Prometheus text format 0.0.4."""

from collections.abc import Mapping

from lib.api.durations import RequestDurations

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
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: object) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs):
    return "{" + ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs) + "}" if pairs else ""


def render(counters: Mapping[str, int], status_counts: Mapping[str, int],
           queue_counts: Mapping[str, Mapping[str, int]], durations: RequestDurations) -> str:
    """The whole /metrics page: HELP and TYPE before each family's samples. queue_counts is each
    beanstalkd's (JobQueue.counts)."""
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
    states = ("ready", "reserved", "delayed", "buried")
    family("paypoc_queue_jobs", "gauge", "Jobs in the tube by state, now, over every beanstalkd.",
           [([("state", state)], sum(counts[state] for counts in queue_counts.values())) for state in states])
    family("paypoc_queue_server_jobs", "gauge", "Jobs in the tube by state, now, on each beanstalkd.",
           [([("server", server), ("state", state)], counts[state])
            for server, counts in queue_counts.items() for state in states])
    name = "paypoc_http_request_duration_seconds"
    lines += [f"# HELP {name} Time to answer a request, summed over every API process.", f"# TYPE {name} histogram"]
    for labels, cumulative, total in durations.samples():
        edges = [*(format(bound, "g") for bound in durations.buckets), "+Inf"]
        lines += [f"{name}_bucket{_labels(labels + [('le', edge)])} {count}" for edge, count in zip(edges, cumulative)]
        lines += [f"{name}_sum{_labels(labels)} {total:.6f}", f"{name}_count{_labels(labels)} {cumulative[-1]}"]
    return "\n".join(lines) + "\n"
