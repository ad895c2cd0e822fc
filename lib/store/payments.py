"""Payments in Redis: one hash per payment, an index of the ones not finished yet, one per user."""

import uuid
from decimal import Decimal

from lib.store.clock import utc_now
from lib.store.redis_client import ThreadRedis

PENDING, PROCESSING, COMPLETED, FAILED = "PENDING", "PROCESSING", "COMPLETED", "FAILED"
# A sorted set of unfinished payment ids, each scored with the time (Redis clock, seconds) from
# which it is expected to make progress: created, retry due, lease over. The sweeper queues
# again those still there STALE_AFTER seconds later: that is how a lost job is found.
UNFINISHED_KEY = "payments:unfinished"

# A page of a user's payments, newest first, in one round trip. The cursor is a payment id: its
# rank is looked up now, so payments added since the previous page do not shift this one. The
# cost is O(log n + page size) however many payments are stored.
LIST_LUA = """
-- KEYS[1]: the user's payments index
-- ARGV[1]: how many to return (one more is fetched, to tell whether there are more);
-- ARGV[2]: the id to start after, or ''
-- Returns the payments' hashes (flat field, value lists), or false when ARGV[2] is not in the index.
local start = 0
if ARGV[2] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[2])
  if not rank then
    return false
  end
  start = rank + 1
end
local page = {}
for i, id in ipairs(redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[1]), 'REV')) do
  page[i] = redis.call('HGETALL', 'payment:' .. id)
end
return page
"""


def payment_key(payment_id: str) -> str:
    """The Redis key of a payment's hash."""
    return f"payment:{payment_id}"


def user_index_key(user_id: str) -> str:
    """The Redis key of a user's payments: a sorted set of ids scored by creation time (µs)."""
    return f"payments:user:{user_id}"


def new_payment(user_id: str, amount: str, currency: str) -> dict[str, str]:
    """A new PENDING payment as stored: every value a string, amount in canonical form."""
    now = utc_now()
    return {"id": str(uuid.uuid4()), "user_id": user_id, "amount": amount, "currency": currency,
            "status": PENDING, "attempts": "0", "initiated_at": now, "updated_at": now}


def to_json(payment: dict[str, str]) -> dict[str, object]:
    """A stored payment as the API shows it: its public fields in order, amount an exact number."""
    return {"id": payment["id"], "user_id": payment["user_id"], "amount": Decimal(payment["amount"]),
            "currency": payment["currency"], "status": payment["status"],
            "attempts": int(payment["attempts"]), "failure_reason": payment.get("failure_reason"),
            "initiated_at": payment["initiated_at"], "updated_at": payment["updated_at"]}


class PaymentStore:
    """Reads and writes payments; Redis is the source of truth for every payment's status."""

    def __init__(self, redis: ThreadRedis):
        self._redis = redis
        self._list = redis.register_script(LIST_LUA)

    def get(self, payment_id: str) -> dict[str, str] | None:
        """The stored payment (internal fields included), or None when there is none with that id."""
        return self._redis.hgetall(payment_key(payment_id)) or None

    def list_for_user(self, user_id: str, limit: int,
                      starting_after: str | None = None) -> tuple[list[dict[str, str]], bool]:
        """(up to limit payments of the user, newest first; whether there are more), or
        LookupError when starting_after is not one of the user's payments."""
        page = self._list(keys=[user_index_key(user_id)], args=[limit, starting_after or ""])
        if page is None:
            raise LookupError(starting_after)
        payments = [dict(zip(fields[::2], fields[1::2])) for fields in page]
        return payments[:limit], len(payments) > limit

    def mark_due(self, *payment_ids: str) -> None:
        """Ask the sweeper to queue these payments at its next pass (their jobs could not be
        queued): a score of 0 is older than any cut-off. Only ids still in the index are
        touched (xx): a payment that finished meanwhile must not come back."""
        self._redis.zadd(UNFINISHED_KEY, dict.fromkeys(payment_ids, 0), xx=True)
