"""The payment: its type, its Redis hash, and the store's scripts that take it in, list it and find it again."""

import hashlib
import json
from collections import defaultdict
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from lib.runtime.clock import utc_now
from lib.store import keys
from lib.store.ratelimit import TAKE_TOKEN_LUA, Decision, RateLimit
from lib.store.redis_client import RedisClient

REPLAY_TTL = 24 * 3600  # seconds an Idempotency-Key's record is kept, as Stripe keeps it


class Status(StrEnum):
    """Where a payment is: PENDING -> PROCESSING -> COMPLETED, or back to PENDING for a retry, or FAILED."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Payment(NamedTuple):
    """A payment, as its Redis hash holds it and the API shows it."""

    id: str
    user_id: str
    amount: Decimal
    currency: str
    status: Status
    attempts: int
    failure_reason: str | None
    initiated_at: str
    updated_at: str

    @classmethod
    def new(cls, user_id: str, amount: Decimal, currency: str) -> "Payment":
        """A payment just taken in: PENDING, no attempt yet, a new UUID4 id naming its user's shard."""
        now = utc_now()
        return cls(keys.new_payment_id(keys.shard_of_user(user_id)), user_id, amount, currency, Status.PENDING, 0,
                   None, now, now)

    @classmethod
    def from_redis(cls, fields: dict[str, str]) -> "Payment":
        """The payment a hash read from Redis holds (fields of the worker's lease are left out)."""
        return cls(fields["id"], fields["user_id"], Decimal(fields["amount"]), fields["currency"],
                   Status(fields["status"]), int(fields["attempts"]), fields.get("failure_reason"),
                   fields["initiated_at"], fields["updated_at"])

    def to_redis(self) -> dict[str, str]:
        """The payment as its hash holds it: every value a string, money exact."""
        fields = {**self._asdict(), "amount": format(self.amount, "f"), "attempts": str(self.attempts)}
        if self.failure_reason is None:
            del fields["failure_reason"]  # a hash cannot hold None: no field means none
        return fields

    def to_json(self) -> dict[str, object]:
        """The API's view: every field, in this order, the amount an exact number."""
        return self._asdict()


class Admission(StrEnum):
    """What admitting a payment decided."""

    CREATED = "created"  # stored, a token spent, the key (if any) recorded
    REPLAYED = "replayed"  # the key was used before with this request: nothing new stored
    MISMATCH = "mismatch"  # the key was used before with another request
    LIMITED = "limited"  # no token left: nothing stored


class Admitted(NamedTuple):
    """Admission's answer: the decision, the bucket after it, and the payment it is about."""

    outcome: Admission
    decision: Decision
    payment_id: str | None  # CREATED: the new payment; REPLAYED: the one the key took in first
    first_reply: str | None  # REPLAYED: the JSON text of the first request's 201


class Page(NamedTuple):
    """One page of a user's payments, newest first."""

    payments: list[Payment]
    has_more: bool


# Everything a POST decides happens in this one script, so no failure can leave half of it
# done: either nothing happened, and a retry goes ahead as new, or the payment, its token and
# its key's record were written together, and a retry with the key gets the first 201. Nothing
# is undone after an error whose outcome is unknown (a timeout may come after Redis ran it).
ADMIT_LUA = TAKE_TOKEN_LUA + """
-- KEYS: 1 the user's token bucket, 2 the payment's hash, 3 the unfinished index, 4 the user's
-- payments, 5 the counters, 6 the counts by status, 7 the Idempotency-Key's record (with a key only)
-- ARGV: 1 bucket capacity, 2 bucket window, 3 the request's fingerprint, 4 seconds the record is
-- kept, 5 the 201's body to keep with the key, 6 the payment's hash as a JSON object (one argument,
-- not eighteen: each argument costs the client more than decoding them all costs Redis)
-- Returns {outcome, tokens left, seconds until a token is back, seconds until full, payment id, body}
local capacity, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local fingerprint, record_ttl, reply, new_payment = ARGV[3], ARGV[4], ARGV[5], cjson.decode(ARGV[6])
local bucket, payment, unfinished, user_payments = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local counters, status_counts, record = KEYS[5], KEYS[6], KEYS[7]
local clock = redis.call('TIME')  -- the bucket's clock and the payment's time of arrival
if record then
  local first = redis.call('HMGET', record, 'fingerprint', 'payment_id', 'body')
  if first[1] then
    local outcome = 'mismatch'
    if first[1] == fingerprint then
      outcome = 'replayed'
      redis.call('HINCRBY', counters, 'idempotent_replays', 1)
    end
    local _, left, retry_after, full_in = take_token(bucket, capacity, window, 0, clock)
    return {outcome, left, retry_after, full_in, first[2], first[3]}
  end
end
local allowed, left, retry_after, full_in = take_token(bucket, capacity, window, 1, clock)
if allowed == 0 then
  redis.call('HINCRBY', counters, 'rate_limited', 1)
  return {'limited', left, retry_after, full_in}
end
local fields, payment_id = {}, new_payment['id']
for name, value in pairs(new_payment) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', payment, unpack(fields))
redis.call('ZADD', unfinished, clock[1], payment_id)
-- microseconds since the epoch, exact in a double: the user's payments in the order they came
redis.call('ZADD', user_payments, tonumber(clock[1]) * 1000000 + tonumber(clock[2]), payment_id)
redis.call('HINCRBY', counters, 'payments_created', 1)
redis.call('HINCRBY', status_counts, 'PENDING', 1)
if record then
  redis.call('HSET', record, 'fingerprint', fingerprint, 'payment_id', payment_id, 'body', reply)
  redis.call('EXPIRE', record, record_ttl)
end
return {'created', left, retry_after, full_in, payment_id}
"""

# A page of a user's payments, newest first. The cursor is a payment id whose rank is looked up
# now, so payments added since the previous page do not shift this one: O(log n + page size).
LIST_LUA = """
-- KEYS: 1 the user's payments
-- ARGV: 1 how many to return (one more is fetched, to tell whether there are more), 2 the id to start after, or ''
-- Returns the ids, or false when ARGV[2] is not one of the user's payments.
local user_payments, count, after = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local start = 0
if after ~= '' then
  local rank = redis.call('ZREVRANK', user_payments, after)
  if not rank then
    return false
  end
  start = rank + 1
end
return redis.call('ZRANGE', user_payments, start, start + count, 'REV')
"""


def fingerprint(payment: Payment) -> str:
    """A digest of what a POST asked for: the same payment sent twice has the same fingerprint."""
    request = [payment.user_id, format(payment.amount, "f"), payment.currency]
    return hashlib.sha256(json.dumps(request).encode()).hexdigest()


def admission_keys(payment: Payment, key: str | None) -> list[str]:
    """The keys the admission script is given: all in the user's shard, which is the payment's too."""
    shard = keys.shard_of_user(payment.user_id)
    admission = [keys.rate_limit(payment.user_id), keys.payment(payment.id), keys.unfinished(shard),
                 keys.user_payments(payment.user_id), keys.counters(shard), keys.status_counts(shard)]
    return admission + ([keys.idempotency(payment.user_id, key)] if key is not None else [])


class UnknownCursor(LookupError):
    """starting_after is not one of the user's payments."""


class PaymentStore:
    """Takes payments in, reads them and lists them; Redis is the source of truth for each one's status."""

    def __init__(self, redis: RedisClient, wait_replicas: int = 0):
        self._redis, self.wait_replicas = redis, wait_replicas
        self._admit = redis.register_script(ADMIT_LUA)
        self._list = redis.register_script(LIST_LUA)

    def admit(self, payment: Payment, limit: RateLimit, key: str | None = None, reply: str = "") -> Admitted:
        """Store the new payment if its user has a token and `key` was not used before: one round trip.
        With a key, `reply` (the 201's body) is kept with it, so that a retry gets the same answer."""
        request = fingerprint(payment) if key is not None else ""  # without a key, nothing to compare
        args = [limit.capacity, limit.window, request, REPLAY_TTL, reply, json.dumps(payment.to_redis())]
        script_keys = admission_keys(payment, key)
        if self.wait_replicas:  # REDIS_WAIT_REPLICAS: answered once replicas have the payment too
            answer = self._redis.run_on_replicas(self._admit, script_keys, args, self.wait_replicas)
        else:
            answer = self._admit(keys=script_keys, args=args)
        outcome, left, retry_after, full_in, *found = answer
        found += [None] * (2 - len(found))
        decision = Decision(outcome != Admission.LIMITED, left, retry_after, full_in)
        return Admitted(Admission(outcome), decision, *found)

    def get(self, payment_id: str) -> Payment | None:
        """The payment as stored now, or None when there is none with that id."""
        fields = self._redis.hgetall(keys.payment(payment_id))
        return Payment.from_redis(fields) if fields else None

    def list_for_user(self, user_id: str, limit: int, starting_after: str | None = None) -> Page:
        """Up to limit of the user's payments, newest first, after the one given; UnknownCursor when
        that one is not the user's. Two round trips: the page's ids, then their hashes."""
        ids = self._list(keys=[keys.user_payments(user_id)], args=[limit, starting_after or ""])
        if ids is None:
            raise UnknownCursor(starting_after)
        with self._redis.pipeline(transaction=False) as pipe:
            for payment_id in ids[:limit]:
                pipe.hgetall(keys.payment(payment_id))
            hashes = pipe.execute()
        return Page([Payment.from_redis(fields) for fields in hashes], len(ids) > limit)

    def mark_due(self, *payment_ids: str) -> None:
        """Ask the sweeper to queue these payments at its next pass (their jobs could not be queued):
        a score of 0 is older than any cut-off. Only ids still unfinished are touched (xx): a payment
        that finished meanwhile must not come back."""
        by_shard = defaultdict(list)
        for payment_id in payment_ids:
            by_shard[keys.shard_of_payment(payment_id)].append(payment_id)
        for shard, ids in by_shard.items():
            self._redis.zadd(keys.unfinished(shard), dict.fromkeys(ids, 0), xx=True)
