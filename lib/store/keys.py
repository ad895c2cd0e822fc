"""Every Redis key paypoc uses, one function each: the whole keyspace on one page.

The keyspace is cut into SHARDS shards. A user's shard is a hash of the user id; a payment
lives in its user's shard, and its id says which (its first two hex digits). Every key of a
shard carries the shard's hash tag, `{17}`: Redis Cluster puts every key with one tag in one
slot, so a script given the keys of one shard runs there as one atomic step, and the shards
spread over the cluster's masters. What is global (the unfinished payments, the counts, the
processor's records) is kept per shard and summed on read. On a single Redis the tags are
only characters. Scripts are given their keys in KEYS, made here; none builds a key itself.
"""

import json
import uuid
import zlib

SHARDS = 256  # far more than masters, so they spread evenly; a payment id's first byte holds one


def shard_of_user(user_id: str) -> int:
    """The shard a user's keys and payments live in."""
    return zlib.crc32(user_id.encode()) % SHARDS


def shard_of_payment(payment_id: str) -> int:
    """The shard a payment lives in: its id's first two hex digits."""
    return int(payment_id[:2], 16) % SHARDS


def new_payment_id(shard: int) -> str:
    """A new payment id: a random UUID4 whose first byte (random in any UUID4) is the shard."""
    return str(uuid.UUID(f"{shard:02x}{uuid.uuid4().hex[2:]}"))


def _tag(shard: int) -> str:
    return f"{{{shard}}}"


def payment(payment_id: str) -> str:
    """Hash: one payment's fields (lib/store/payments.py) and its worker's lease
    (lease, job_id, lease_until, interrupted, settling). Never expires."""
    return f"payment:{_tag(shard_of_payment(payment_id))}:{payment_id}"


def user_payments(user_id: str) -> str:
    """Sorted set: a user's payment ids, scored by creation time in µs; GET /payments?user_id= pages it."""
    return f"payments:{_tag(shard_of_user(user_id))}:user:{user_id}"


def unfinished(shard: int) -> str:
    """Sorted set: a shard's payments not COMPLETED or FAILED yet, scored by when (Redis clock,
    seconds) each should next make progress; the sweeper queues again those long past it."""
    return f"payments:{_tag(shard)}:unfinished"


def rate_limit(user_id: str) -> str:
    """Hash: a user's token bucket (tokens, at_ms); expires once the bucket is full again."""
    return f"ratelimit:{_tag(shard_of_user(user_id))}:{user_id}"


def idempotency(user_id: str, key: str) -> str:
    """Hash: what an Idempotency-Key took in (fingerprint, payment_id, body); kept 24 h. Keys are
    scoped to the user, as Stripe scopes them to an account; JSON keeps any characters unambiguous."""
    return f"idempotency:{_tag(shard_of_user(user_id))}:" + json.dumps([user_id, key])


def counters(shard: int) -> str:
    """Hash: a shard's totals since the store was made (payments_created, rate_limited...), for GET /metrics and /summary."""
    return f"metrics:{_tag(shard)}:counters"


def status_counts(shard: int) -> str:
    """Hash: status -> how many of a shard's payments are in it now, for GET /metrics and /summary."""
    return f"metrics:{_tag(shard)}:payments_by_status"


def workers() -> str:
    """Set: ids of worker processes that have written a heartbeat."""
    return "workers:{workers}"


def worker(worker_id: str) -> str:
    """Hash: one worker process's heartbeat (pid, threads, jobs done...); expires unless renewed."""
    return f"worker:{{workers}}:{worker_id}"


def charges(shard: int) -> str:
    """Hash: the simulated processor's charges of a shard's payments, payment id -> charge id."""
    return f"processor:{_tag(shard)}:charges"


def cancelled(shard: int) -> str:
    """Set: a shard's payment ids the simulated processor has cancelled; no charge for them can land."""
    return f"processor:{_tag(shard)}:cancelled"


def charge_requests(shard: int) -> str:
    """Counter: charge requests the simulated processor has received for a shard's payments,
    replays and refusals included."""
    return f"processor:{_tag(shard)}:requests"
