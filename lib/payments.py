"""Payments in Redis: one hash per payment, and status changes made by compare-and-set."""

import uuid
from datetime import datetime, timezone
from decimal import Decimal

PENDING, PROCESSING, COMPLETED, FAILED = "PENDING", "PROCESSING", "COMPLETED", "FAILED"
FIELDS = ("id", "user_id", "amount", "currency", "status", "initiated_at", "updated_at")

# A status only ever moves forward, and only from the status the caller saw: a late or
# duplicated job then cannot move a payment backwards, and two workers cannot both finish it.
SET_STATUS_LUA = """
-- KEYS[1]: the payment hash
-- ARGV[1]: status it must have now; ARGV[2]: status to set; ARGV[3]: updated_at
-- Returns the status found (nil when there is no such payment); it was changed only if
-- that equals ARGV[1].
local found = redis.call('HGET', KEYS[1], 'status')
if found == ARGV[1] then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated_at', ARGV[3])
end
return found
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


def new_payment(user_id, amount, currency):
    """A new PENDING payment as stored: every value a string, amount in canonical form."""
    now = utc_now()
    return {"id": str(uuid.uuid4()), "user_id": user_id, "amount": amount, "currency": currency,
            "status": PENDING, "initiated_at": now, "updated_at": now}


def to_json(payment):
    """A stored payment in the API's field order, with amount as an exact JSON number."""
    return {field: Decimal(payment[field]) if field == "amount" else payment[field]
            for field in FIELDS}


class PaymentStore:
    """Reads and writes payments; Redis is the source of truth for every payment's status."""

    def __init__(self, redis):
        self._redis = redis
        self._set_status = redis.register_script(SET_STATUS_LUA)

    def add(self, payment):
        """Store a new payment."""
        self._redis.hset(f"payment:{payment['id']}", mapping=payment)

    def get(self, payment_id):
        """The stored payment, or None when there is none with that id."""
        return self._redis.hgetall(f"payment:{payment_id}") or None

    def delete(self, payment_id):
        """Remove a payment (used when it could not be queued, so nobody ever saw it accepted)."""
        self._redis.delete(f"payment:{payment_id}")

    def set_status(self, payment_id, expected, new):
        """Move a payment from expected to new status; return the status found beforehand.

        The move happened only when the returned status equals expected; None means no payment.
        """
        return self._set_status(keys=[f"payment:{payment_id}"], args=[expected, new, utc_now()])
