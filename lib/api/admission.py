"""Admission: the one atomic step that takes a payment in, or finds the one its Idempotency-Key took in."""

from typing import NamedTuple

from lib.api.idempotency import REPLAY_TTL, fingerprint, record_key
from lib.api.ratelimit import TAKE_TOKEN_LUA, Decision, TokenBucket
from lib.http.jsonio import dumps
from lib.store.metrics import COUNTERS_KEY, STATUS_COUNTS_KEY
from lib.store.payments import UNFINISHED_KEY, payment_key, user_index_key
from lib.store.redis_client import ThreadRedis

CREATED, REPLAYED, MISMATCH, LIMITED = "created", "replayed", "mismatch", "limited"

# Everything a POST decides happens in this one script, so no failure can leave half of it
# done: either nothing happened, and a retry goes ahead as new, or the payment, its token and
# its key's record were written together, and a retry with the key is answered with the first
# 201. Nothing is "in flight" for a retry to wait out, and nothing is undone after an error
# whose outcome is unknown (a timeout may come after Redis ran the script).
ADMIT_LUA = """
-- KEYS[1]: the user's token bucket; KEYS[2]: the new payment's hash; KEYS[3]: the unfinished index;
-- KEYS[4]: the user's payments index; KEYS[5]: the metrics counters; KEYS[6]: the counts by status;
-- KEYS[7]: the Idempotency-Key's record (a hash), only when the request has a key
-- ARGV[1], ARGV[2]: the bucket's capacity and window; ARGV[3]: the request's fingerprint;
-- ARGV[4]: seconds the key's record is kept; ARGV[5]: the 201's body, to keep with the key;
-- ARGV[6..10]: the new payment's id, user_id, amount, currency and creation time
-- Returns {outcome, tokens left, seconds until a token is back, seconds until full, payment id,
-- body}; outcome is created, replayed (with the first request's payment id and body),
-- mismatch (the key came with another body) or limited (no token: nothing stored).
""" + TAKE_TOKEN_LUA + """
if KEYS[7] then
  local record = redis.call('HMGET', KEYS[7], 'fingerprint', 'payment_id', 'body')
  if record[1] then
    local outcome = 'mismatch'
    if record[1] == ARGV[3] then
      outcome = 'replayed'
      redis.call('HINCRBY', KEYS[5], 'idempotent_replays', 1)
    end
    local _, left, retry_after, full_in = take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 0)
    return {outcome, left, retry_after, full_in, record[2], record[3]}
  end
end
local allowed, left, retry_after, full_in = take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1)
if allowed == 0 then
  redis.call('HINCRBY', KEYS[5], 'rate_limited', 1)
  return {'limited', left, retry_after, full_in}
end
-- The payment as new_payment (lib/store/payments.py) makes it.
redis.call('HSET', KEYS[2], 'id', ARGV[6], 'user_id', ARGV[7], 'amount', ARGV[8], 'currency', ARGV[9],
           'status', 'PENDING', 'attempts', '0', 'initiated_at', ARGV[10], 'updated_at', ARGV[10])
local clock = redis.call('TIME')
redis.call('ZADD', KEYS[3], clock[1], ARGV[6])
-- microseconds since the epoch, exact in a double: the user's payments in the order they came
redis.call('ZADD', KEYS[4], tonumber(clock[1]) * 1000000 + tonumber(clock[2]), ARGV[6])
redis.call('HINCRBY', KEYS[5], 'payments_created', 1)
redis.call('HINCRBY', KEYS[6], 'PENDING', 1)
if KEYS[7] then
  redis.call('HSET', KEYS[7], 'fingerprint', ARGV[3], 'payment_id', ARGV[6], 'body', ARGV[5])
  redis.call('EXPIRE', KEYS[7], ARGV[4])
end
return {'created', left, retry_after, full_in, ARGV[6]}
"""


class Admitted(NamedTuple):
    """What admission decided, and the rate-limit state to report with it."""

    outcome: str  # CREATED, REPLAYED, MISMATCH or LIMITED
    decision: Decision
    payment_id: str | None  # the payment created, or the one the key took in first
    first_body: str | None  # REPLAYED: the JSON text of the first request's 201


class Admission:
    """Admits payments against one rate-limit policy."""

    def __init__(self, redis: ThreadRedis, bucket: TokenBucket, replay_ttl: int = REPLAY_TTL):
        self.bucket = bucket
        self.replay_ttl = replay_ttl
        self._admit = redis.register_script(ADMIT_LUA)

    def admit(self, payment: dict, key: str | None = None, body: object = None) -> Admitted:
        """Store the new payment if the user has a token and `key` has not been used; one round trip.

        body is the 201's body: with a key, it is kept with it, so that a retry gets the same answer.
        """
        user_id = payment["user_id"]
        keys = [self.bucket.key(user_id), payment_key(payment["id"]), UNFINISHED_KEY, user_index_key(user_id),
                COUNTERS_KEY, STATUS_COUNTS_KEY]
        request, kept = "", ""  # what a key's record holds: without a key, nothing to compute
        if key is not None:
            keys.append(record_key(user_id, key))
            request, kept = fingerprint(user_id, payment["amount"], payment["currency"]), dumps(body)
        outcome, left, retry_after, full_in, *found = self._admit(
            keys=keys, args=[self.bucket.capacity, self.bucket.window, request, self.replay_ttl, kept, payment["id"],
                             user_id, payment["amount"], payment["currency"], payment["initiated_at"]])
        found += [None] * (2 - len(found))
        return Admitted(outcome, Decision(outcome != LIMITED, left, retry_after, full_in), *found)
