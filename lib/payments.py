"""Payments in Redis: one hash per payment, and an index of the ones not finished yet."""

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from lib.ratelimit import TAKE_TOKEN_LUA, Decision

PENDING, PROCESSING, COMPLETED, FAILED = "PENDING", "PROCESSING", "COMPLETED", "FAILED"
FIELDS = ("id", "user_id", "amount", "currency", "status", "attempts", "failure_reason",
          "initiated_at", "updated_at")
# A sorted set of unfinished payment ids, each scored with the time (Redis clock, seconds) from
# which it is expected to make progress: created, retry due, lease over. The sweeper queues
# again those still there STALE_AFTER seconds later: that is how a lost job is found.
UNFINISHED_KEY = "payments:unfinished"

# Admitting a payment is one round trip: take the user's rate-limit token and, only if there
# was one, store the payment and index it, all in one atomic script.
ADD_LUA = TAKE_TOKEN_LUA + """
-- KEYS[1]: the user's token bucket; KEYS[2]: the new payment's hash; KEYS[3]: the unfinished index
-- ARGV[1], ARGV[2]: the bucket's capacity and window; ARGV[3]: payment id; ARGV[4..]: field, value...
-- Returns take_token's four results; the payment was stored when the first is 1.
local allowed, remaining, retry_after, reset = take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if allowed == 1 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 4))
  redis.call('ZADD', KEYS[3], redis.call('TIME')[1], ARGV[3])
end
return {allowed, remaining, retry_after, reset}
"""


def utc_now():
    """The current time as RFC 3339 UTC with microseconds: 2026-11-24T10:00:00.123456Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_payment_id(text):
    """True when text is a UUID in its canonical form, the only shape a payment id has."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def payment_key(payment_id):
    """The Redis key of a payment's hash."""
    return f"payment:{payment_id}"


def new_payment(user_id, amount, currency):
    """A new PENDING payment as stored: every value a string, amount in canonical form."""
    now = utc_now()
    return {"id": str(uuid.uuid4()), "user_id": user_id, "amount": amount, "currency": currency,
            "status": PENDING, "attempts": "0", "initiated_at": now, "updated_at": now}


def to_json(payment):
    """A stored payment as the API shows it: its public fields in order, amount an exact number."""
    return {"id": payment["id"], "user_id": payment["user_id"], "amount": Decimal(payment["amount"]),
            "currency": payment["currency"], "status": payment["status"],
            "attempts": int(payment["attempts"]), "failure_reason": payment.get("failure_reason"),
            "initiated_at": payment["initiated_at"], "updated_at": payment["updated_at"]}


class PaymentStore:
    """Reads and writes payments; Redis is the source of truth for every payment's status."""

    def __init__(self, redis):
        self._redis = redis
        self._add = redis.register_script(ADD_LUA)

    def add(self, payment, bucket):
        """Spend one of the user's tokens from bucket (a TokenBucket) and, if there was one, store
        the payment and index it as unfinished; return the rate-limit Decision."""
        fields = [item for pair in payment.items() for item in pair]
        allowed, remaining, retry_after, reset = self._add(
            keys=[bucket.key(payment["user_id"]), payment_key(payment["id"]), UNFINISHED_KEY],
            args=[bucket.capacity, bucket.window, payment["id"], *fields])
        return Decision(bool(allowed), remaining, retry_after, reset)

    def get(self, payment_id):
        """The stored payment (internal fields included), or None when there is none with that id."""
        return self._redis.hgetall(payment_key(payment_id)) or None

    def mark_due(self, payment_id):
        """Ask the sweeper to queue this payment at its next pass (its job could not be queued):
        a score of 0 is older than any cut-off."""
        self._redis.zadd(UNFINISHED_KEY, {payment_id: 0})
