"""A worker's attempt at a payment: begun and ended by compare-and-set, fenced by a lease number."""

from typing import NamedTuple

from lib.store.clock import utc_now
from lib.store.metrics import COUNTERS_KEY, STATUS_COUNTS_KEY
from lib.store.payments import UNFINISHED_KEY, payment_key
from lib.store.redis_client import ThreadRedis

# Beginning takes a lease on the payment for the job's time-to-run, numbered one more than the
# last: only the holder of the newest lease may end it. Another job for the same payment (a
# duplicate from the sweeper) finds the lease live and is dropped; the same job handed out again
# (its worker died, so beanstalkd released it) takes the payment over at once, and so does any
# job once the lease has run out. Taking over a payment still PROCESSING means the attempt
# before never finished (its worker died, stalled past its lease, or lost Redis): it counts as
# interrupted. With no attempt left, the lease is taken to settle the payment instead (outcome
# 'exhausted'), and a settling that is itself cut short counts as nothing.
BEGIN_LUA = """
-- KEYS[1]: the payment hash; KEYS[2]: the unfinished index; KEYS[3]: the counts by status
-- ARGV[1]: payment id; ARGV[2]: job id; ARGV[3]: lease seconds (the job's TTR); ARGV[4]: updated_at;
-- ARGV[5]: MAX_ATTEMPTS
-- Returns {outcome, lease, attempts, interrupted, user_id, amount, currency}, outcome one of: started,
-- exhausted, busy, missing, COMPLETED, FAILED.
local p = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'job_id', 'lease_until', 'lease', 'interrupted',
                     'user_id', 'amount', 'currency', 'settling')
local status, attempts = p[1], tonumber(p[2]) or 0
if not status then
  return {'missing', 0, 0, 0}
end
if status == 'COMPLETED' or status == 'FAILED' then
  redis.call('ZREM', KEYS[2], ARGV[1])  -- a duplicate job: the payment is no longer unfinished
  return {status, 0, attempts, 0}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
if status == 'PROCESSING' and p[3] ~= ARGV[2] and now < (tonumber(p[4]) or 0) then
  return {'busy', 0, attempts, 0}
end
local interrupted = tonumber(p[6]) or 0
if status == 'PROCESSING' and not p[10] then
  interrupted = interrupted + 1
end
local outcome = 'exhausted'
if attempts < tonumber(ARGV[5]) then
  outcome = 'started'
  attempts = attempts + 1
else
  redis.call('HSET', KEYS[1], 'settling', '1')
end
local lease = (tonumber(p[5]) or 0) + 1
local lease_until = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'PROCESSING', 'attempts', attempts, 'interrupted', interrupted, 'lease', lease,
           'job_id', ARGV[2], 'lease_until', string.format('%.6f', lease_until), 'updated_at', ARGV[4])
redis.call('ZADD', KEYS[2], lease_until, ARGV[1])
if status == 'PENDING' then
  redis.call('HINCRBY', KEYS[3], 'PENDING', -1)
  redis.call('HINCRBY', KEYS[3], 'PROCESSING', 1)
end
return {outcome, lease, attempts, interrupted, p[7], p[8], p[9]}
"""

# Only the holder of the newest lease may end it: a worker that lost its lease (it stalled, or
# its connection dropped and another worker took the job) cannot overwrite the outcome.
END_LUA = """
-- KEYS[1]: the payment hash; KEYS[2]: the unfinished index; KEYS[3]: the counts by status;
-- KEYS[4]: the metrics counters
-- ARGV[1]: payment id; ARGV[2]: lease number; ARGV[3]: new status (PENDING, COMPLETED, FAILED);
-- ARGV[4]: updated_at; ARGV[5]: failure reason ('' for none);
-- ARGV[6]: for PENDING, seconds until the retry is due
-- Returns 'ok', or the status and lease found when this lease no longer holds the payment.
local p = redis.call('HMGET', KEYS[1], 'status', 'lease')
if p[1] ~= 'PROCESSING' or p[2] ~= ARGV[2] then
  return tostring(p[1]) .. ' under lease ' .. tostring(p[2])
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[1], 'job_id', 'lease_until')
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'failure_reason', ARGV[5])
end
if ARGV[3] == 'PENDING' then
  local clock = redis.call('TIME')
  redis.call('ZADD', KEYS[2], tonumber(clock[1]) + tonumber(ARGV[6]), ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('HINCRBY', KEYS[3], 'PROCESSING', -1)
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
local counted = {PENDING = 'payments_retried', COMPLETED = 'payments_completed', FAILED = 'payments_failed'}
redis.call('HINCRBY', KEYS[4], counted[ARGV[3]], 1)
return 'ok'
"""

STARTED, EXHAUSTED, BUSY, MISSING = "started", "exhausted", "busy", "missing"


class Begun(NamedTuple):
    """What beginning an attempt found: outcome STARTED or EXHAUSTED holds the lease numbered `lease`."""

    outcome: str  # STARTED, EXHAUSTED, BUSY, MISSING, or the status of a finished payment
    lease: int
    attempts: int  # attempts made, this one included
    interrupted: int  # attempts that never finished
    payment: dict | None  # user_id, amount and currency, when the lease was taken


class Attempts:
    """Begins and ends attempts at payments, at most max_attempts each."""

    def __init__(self, redis: ThreadRedis, lease_seconds: float, max_attempts: int):
        self.lease_seconds, self.max_attempts = lease_seconds, max_attempts
        self._begin = redis.register_script(BEGIN_LUA)
        self._end = redis.register_script(END_LUA)

    def begin(self, payment_id: str, job_id: str) -> Begun:
        """Take the payment's lease for this job, for an attempt or, with none left, to settle it."""
        outcome, lease, attempts, interrupted, *fields = self._begin(
            keys=[payment_key(payment_id), UNFINISHED_KEY, STATUS_COUNTS_KEY],
            args=[payment_id, job_id, self.lease_seconds, utc_now(), self.max_attempts])
        payment = dict(zip(("user_id", "amount", "currency"), fields)) if fields else None
        return Begun(outcome, lease, attempts, interrupted, payment)

    def end(self, payment_id: str, lease: int, status: str, reason: str = "", retry_in: int = 0) -> str | None:
        """End the attempt holding `lease` with status; return None, or why it no longer could."""
        result = self._end(keys=[payment_key(payment_id), UNFINISHED_KEY, STATUS_COUNTS_KEY, COUNTERS_KEY],
                           args=[payment_id, lease, status, utc_now(), reason, retry_in])
        return None if result == "ok" else result
