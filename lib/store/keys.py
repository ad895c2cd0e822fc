"""Every Redis key paypoc uses, one function each: the whole keyspace on one page.

Scripts are given their keys in KEYS, made here; no script builds a key name of its own.
"""

import json


def payment(payment_id: str) -> str:
    """Hash: one payment's fields (lib/store/payments.py) and its worker's lease
    (lease, job_id, lease_until, interrupted, settling). Never expires."""
    return f"payment:{payment_id}"


def user_payments(user_id: str) -> str:
    """Sorted set: a user's payment ids, scored by creation time in µs; GET /payments?user_id= pages it."""
    return f"payments:user:{user_id}"


def unfinished() -> str:
    """Sorted set: ids of payments not COMPLETED or FAILED yet, scored by when (Redis clock, seconds)
    each should next make progress; the sweeper queues again those long past it."""
    return "payments:unfinished"


def rate_limit(user_id: str) -> str:
    """Hash: a user's token bucket (tokens, at_ms); expires once the bucket is full again."""
    return f"ratelimit:{user_id}"


def idempotency(user_id: str, key: str) -> str:
    """Hash: what an Idempotency-Key took in (fingerprint, payment_id, body); kept 24 h. Keys are
    scoped to the user, as Stripe scopes them to an account; JSON keeps any characters unambiguous."""
    return "idempotency:" + json.dumps([user_id, key])


def counters() -> str:
    """Hash: totals since the store was made (payments_created, rate_limited...), for GET /metrics and /summary."""
    return "metrics:counters"


def status_counts() -> str:
    """Hash: status -> how many payments are in it now, for GET /metrics and /summary."""
    return "metrics:payments_by_status"


def workers() -> str:
    """Set: ids of worker processes that have written a heartbeat."""
    return "workers"


def worker(worker_id: str) -> str:
    """Hash: one worker process's heartbeat (pid, threads, jobs done...); expires unless renewed."""
    return f"worker:{worker_id}"


def charges() -> str:
    """Hash: the simulated processor's charges, payment id -> charge id."""
    return "processor:charges"


def cancelled() -> str:
    """Set: payment ids the simulated processor has cancelled; no charge for them can land."""
    return "processor:cancelled"


def charge_requests() -> str:
    """Counter: charge requests the simulated processor has received, replays and refusals included."""
    return "processor:requests"
