"""A worker's attempt at a payment, begun and ended by compare-and-set and fenced by a numbered
lease; and the schedule of unfinished payments that the sweeper reads."""

from enum import StrEnum
from typing import NamedTuple

from lib.runtime.clock import utc_now
from lib.store import keys
from lib.store.payments import Payment, Status
from lib.store.redis_client import RedisClient


class BeginOutcome(StrEnum):
    """What beginning an attempt found."""

    STARTED = "started"  # the lease is this job's: make the attempt
    SETTLE = "settle"  # the lease is this job's, but no attempt is left: settle the payment instead
    BUSY = "busy"  # another job holds a live lease on it: this one is a duplicate
    FINISHED = "finished"  # COMPLETED or FAILED already
    MISSING = "missing"  # no payment has that id


class Begun(NamedTuple):
    """Beginning's answer; with STARTED or SETTLE the attempt holds the lease numbered `lease`."""

    outcome: BeginOutcome
    payment: Payment | None  # as it is now (attempts counts this one); None when MISSING
    lease: int
    interrupted: int  # attempts that never finished
    last_attempt: bool  # STARTED: no attempt is left after this one


class EndOutcome(StrEnum):
    """What ending an attempt did."""

    ENDED = "ended"  # the payment has its new status
    LEASE_LOST = "lease lost"  # a newer attempt holds the payment, or it finished: nothing changed


class Ended(NamedTuple):
    """Ending's answer, with the status and lease found when the lease was lost."""

    outcome: EndOutcome
    status: Status | None
    lease: int


# Beginning takes a lease on the payment for the job's time-to-run, numbered one more than the
# last: only the holder of the newest lease may end it. Another job for the same payment (a
# duplicate from the sweeper) finds the lease live and is dropped; the same job handed out again
# (its worker died, so beanstalkd released it) takes the payment over at once, and so does any
# job once the lease has run out. Taking over a payment still PROCESSING means the attempt
# before never finished (its worker died, stalled past its lease, or lost Redis): it counts as
# interrupted. With no attempt left, the lease is taken to settle the payment instead, and a
# settling that is itself cut short counts as nothing.
BEGIN_LUA = """
-- KEYS: 1 the payment's hash, 2 the unfinished payments, 3 the counts by status
-- ARGV: 1 payment id, 2 job id, 3 lease seconds (the job's TTR), 4 the time now (updated_at), 5 MAX_ATTEMPTS
-- Returns {outcome, lease, interrupted, last attempt 1/0, attempts, the payment's hash as it was read}
local payment, unfinished, status_counts = KEYS[1], KEYS[2], KEYS[3]
local payment_id, job_id, lease_seconds, now_text = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local max_attempts = tonumber(ARGV[5])
local read = redis.call('HGETALL', payment)  -- one read: what is decided on, and what the worker is told
if #read == 0 then
  return {'missing', 0, 0, 0, 0, {}}
end
local p = {}
for i = 1, #read, 2 do
  p[read[i]] = read[i + 1]
end
local status, attempts, lease = p.status, tonumber(p.attempts) or 0, tonumber(p.lease) or 0
if status == 'COMPLETED' or status == 'FAILED' then
  redis.call('ZREM', unfinished, payment_id)  -- a duplicate job: the payment is no longer unfinished
  return {'finished', lease, 0, 0, attempts, read}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
if status == 'PROCESSING' and p.job_id ~= job_id and now < (tonumber(p.lease_until) or 0) then
  return {'busy', lease, 0, 0, attempts, read}
end
local interrupted = tonumber(p.interrupted) or 0
if status == 'PROCESSING' and not p.settling then
  interrupted = interrupted + 1
end
local outcome = 'settle'
if attempts < max_attempts then
  outcome = 'started'
  attempts = attempts + 1
else
  redis.call('HSET', payment, 'settling', '1')
end
lease = lease + 1
local lease_until = now + lease_seconds
redis.call('HSET', payment, 'status', 'PROCESSING', 'attempts', attempts, 'interrupted', interrupted, 'lease', lease,
           'job_id', job_id, 'lease_until', string.format('%.6f', lease_until), 'updated_at', now_text)
redis.call('ZADD', unfinished, lease_until, payment_id)
if status == 'PENDING' then
  redis.call('HINCRBY', status_counts, 'PENDING', -1)
  redis.call('HINCRBY', status_counts, 'PROCESSING', 1)
end
local last = 0
if attempts >= max_attempts then
  last = 1
end
return {outcome, lease, interrupted, last, attempts, read}
"""

# Only the holder of the newest lease may end it: a worker that lost its lease (it stalled, or
# its connection dropped and another worker took the job) cannot overwrite the outcome.
END_LUA = """
-- KEYS: 1 the payment's hash, 2 the unfinished payments, 3 the counts by status, 4 the counters
-- ARGV: 1 payment id, 2 lease number, 3 new status (PENDING, COMPLETED, FAILED), 4 the time now
-- (updated_at), 5 failure reason ('' for none), 6 for PENDING: seconds until the retry is due
-- Returns {'ended'}, or {'lease lost', the status found, the lease found}.
local payment, unfinished, status_counts, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local payment_id, lease, new_status, now_text = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local reason, retry_in = ARGV[5], tonumber(ARGV[6])
local p = redis.call('HMGET', payment, 'status', 'lease')
if p[1] ~= 'PROCESSING' or p[2] ~= lease then
  return {'lease lost', p[1] or false, tonumber(p[2]) or 0}
end
-- The lease's own fields (job_id, lease_until) stay: they are read only while a payment is PROCESSING.
redis.call('HSET', payment, 'status', new_status, 'updated_at', now_text)
if reason ~= '' then
  redis.call('HSET', payment, 'failure_reason', reason)
end
if new_status == 'PENDING' then
  redis.call('ZADD', unfinished, tonumber(redis.call('TIME')[1]) + retry_in, payment_id)
else
  redis.call('ZREM', unfinished, payment_id)
end
redis.call('HINCRBY', status_counts, 'PROCESSING', -1)
redis.call('HINCRBY', status_counts, new_status, 1)
local counted = {PENDING = 'payments_retried', COMPLETED = 'payments_completed', FAILED = 'payments_failed'}
redis.call('HINCRBY', counters, counted[new_status], 1)
return {'ended'}
"""

# Claiming re-stamps each overdue payment with the time now in the same atomic step, so two
# sweepers never both take it, and it is overdue again only after another STALE_AFTER.
CLAIM_OVERDUE_LUA = """
-- KEYS: 1 the unfinished payments (id -> since when it should be making progress)
-- ARGV: 1 how many to claim at most, 2 STALE_AFTER in seconds
-- Returns the claimed payment ids.
local unfinished, batch, stale_after = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local ids = redis.call('ZRANGEBYSCORE', unfinished, '-inf', now - stale_after, 'LIMIT', 0, batch)
for _, id in ipairs(ids) do
  redis.call('ZADD', unfinished, now, id)
end
return ids
"""


def begin_keys(payment_id: str) -> list[str]:
    """The keys BEGIN_LUA is given: all in the payment's shard."""
    shard = keys.shard_of_payment(payment_id)
    return [keys.payment(payment_id), keys.unfinished(shard), keys.status_counts(shard)]


def end_keys(payment_id: str) -> list[str]:
    """The keys END_LUA is given: all in the payment's shard."""
    return begin_keys(payment_id) + [keys.counters(keys.shard_of_payment(payment_id))]


class Attempts:
    """Begins and ends attempts at payments, at most max_attempts each, and finds those overdue."""

    def __init__(self, redis: RedisClient, lease_seconds: float, max_attempts: int):
        self.lease_seconds, self.max_attempts = lease_seconds, max_attempts
        self._begin = redis.register_script(BEGIN_LUA)
        self._end = redis.register_script(END_LUA)
        self._claim = redis.register_script(CLAIM_OVERDUE_LUA)

    def begin(self, payment_id: str, job_id: int) -> Begun:
        """Take the payment's lease for this job, for an attempt or, with none left, to settle it."""
        now = utc_now()
        outcome, lease, interrupted, last, attempts, read = self._begin(
            keys=begin_keys(payment_id), args=[payment_id, job_id, self.lease_seconds, now, self.max_attempts])
        outcome, payment = BeginOutcome(outcome), Payment.from_redis(dict(zip(read[::2], read[1::2]))) if read else None
        if outcome in (BeginOutcome.STARTED, BeginOutcome.SETTLE):  # the payment as the script left it
            payment = payment._replace(status=Status.PROCESSING, attempts=attempts, updated_at=now)
        return Begun(outcome, payment, lease, interrupted, bool(last))

    def end(self, payment_id: str, lease: int, status: Status, reason: str = "", retry_in: int = 0) -> Ended:
        """End the attempt holding `lease` with status (PENDING: a retry due in retry_in seconds)."""
        outcome, *found = self._end(keys=end_keys(payment_id), args=[payment_id, lease, status, utc_now(), reason, retry_in])
        status_found, lease_found = found or (None, lease)
        return Ended(EndOutcome(outcome), Status(status_found) if status_found else None, lease_found)

    def claim_overdue(self, shard: int, batch: int, stale_after: float) -> list[str]:
        """Up to batch of a shard's unfinished payments that made no progress for stale_after
        seconds, each re-stamped now, so no other sweeper takes it."""
        return self._claim(keys=[keys.unfinished(shard)], args=[batch, stale_after])
