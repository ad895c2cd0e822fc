"""A worker's attempt at a payment: started and ended by compare-and-set, fenced by attempt number."""

from lib.metrics import COUNTERS_KEY, STATUS_COUNTS_KEY
from lib.payments import UNFINISHED_KEY, payment_key, utc_now

# Starting an attempt takes a lease on the payment for the job's time-to-run. Another job for
# the same payment (a duplicate from the sweeper) finds the lease live and is dropped; the same
# job handed out again (its worker died, so beanstalkd released it) takes the payment over at
# once, and so does any job once the lease has run out.
BEGIN_LUA = """
-- KEYS[1]: the payment hash; KEYS[2]: the unfinished index; KEYS[3]: the counts by status
-- ARGV[1]: payment id; ARGV[2]: job id; ARGV[3]: lease seconds (the job's TTR); ARGV[4]: updated_at
-- Returns {outcome, attempts, user_id, amount, currency}, outcome one of: started, busy,
-- missing, COMPLETED, FAILED (the payment's fields come along to save a round trip).
local p = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'job_id', 'lease_until', 'user_id', 'amount', 'currency')
local status, attempts = p[1], tonumber(p[2]) or 0
if not status then
  return {'missing', 0}
end
if status == 'COMPLETED' or status == 'FAILED' then
  return {status, attempts}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
if status == 'PROCESSING' and p[3] ~= ARGV[2] and now < (tonumber(p[4]) or 0) then
  return {'busy', attempts}
end
attempts = attempts + 1
local lease_until = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'PROCESSING', 'attempts', attempts, 'job_id', ARGV[2],
           'lease_until', string.format('%.6f', lease_until), 'updated_at', ARGV[4])
redis.call('ZADD', KEYS[2], lease_until, ARGV[1])
if status == 'PENDING' then
  redis.call('HINCRBY', KEYS[3], 'PENDING', -1)
  redis.call('HINCRBY', KEYS[3], 'PROCESSING', 1)
end
return {'started', attempts, p[5], p[6], p[7]}
"""

# Only the holder of the latest attempt may end it: a worker that lost its lease (it stalled,
# or its connection dropped and another worker took the job) cannot overwrite the outcome.
END_LUA = """
-- KEYS[1]: the payment hash; KEYS[2]: the unfinished index; KEYS[3]: the counts by status;
-- KEYS[4]: the metrics counters
-- ARGV[1]: payment id; ARGV[2]: attempt number; ARGV[3]: new status (PENDING, COMPLETED, FAILED);
-- ARGV[4]: updated_at; ARGV[5]: failure reason ('' for none);
-- ARGV[6]: for PENDING, seconds until the retry is due
-- Returns 'ok', or the status and attempt found when this attempt no longer holds the payment.
local p = redis.call('HMGET', KEYS[1], 'status', 'attempts')
if p[1] ~= 'PROCESSING' or p[2] ~= ARGV[2] then
  return tostring(p[1]) .. ' at attempt ' .. tostring(p[2])
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


class Attempts:
    """Begins and ends processing attempts on payments."""

    def __init__(self, redis, lease_seconds):
        self.lease_seconds = lease_seconds
        self._begin = redis.register_script(BEGIN_LUA)
        self._end = redis.register_script(END_LUA)

    def begin(self, payment_id, job_id):
        """Try to start an attempt with this job.

        Returns (outcome, attempt number, payment): the payment's user_id, amount and currency
        when the outcome is "started", else None.
        """
        outcome, attempt, *fields = self._begin(
            keys=[payment_key(payment_id), UNFINISHED_KEY, STATUS_COUNTS_KEY],
            args=[payment_id, job_id, self.lease_seconds, utc_now()])
        payment = dict(zip(("user_id", "amount", "currency"), fields)) if fields else None
        return outcome, attempt, payment

    def end(self, payment_id, attempt, status, reason="", retry_in=0):
        """End attempt number `attempt` with status; return None, or why it no longer could."""
        result = self._end(keys=[payment_key(payment_id), UNFINISHED_KEY, STATUS_COUNTS_KEY, COUNTERS_KEY],
                           args=[payment_id, attempt, status, utc_now(), reason, retry_in])
        return None if result == "ok" else result
