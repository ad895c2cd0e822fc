"""The sweeper: finds unfinished payments whose time is up and queues a job for them again."""

import logging
import threading

from lib.store.jobqueue import JobQueue, QueueUnavailable
from lib.store.payments import UNFINISHED_KEY, PaymentStore
from lib.store.redis_client import REDIS_DOWN_ERRORS, ThreadRedis, describe

log = logging.getLogger("paypoc.sweeper")

# Claiming re-stamps each stale payment with the current time in the same atomic step, so two
# worker processes sweeping at once never both take it, and it is stale again only after
# another STALE_AFTER.
CLAIM_STALE_LUA = """
-- KEYS[1]: the unfinished index (payment id -> since when it should be making progress)
-- ARGV[1]: how many to claim at most; ARGV[2]: STALE_AFTER, in seconds
-- Returns the claimed payment ids.
local now = tonumber(redis.call('TIME')[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], now, id)
end
return ids
"""

BATCH = 500


class Sweeper:
    """Every `interval` seconds, re-queues the payments that have waited longer than STALE_AFTER.

    A payment's job can be lost (beanstalkd restarted without its binlog, or the API could not
    reach it and answered 201 anyway): Redis still knows the payment is unfinished, and that
    is enough to queue it again. A duplicate job is harmless: attempts are compare-and-set.
    """

    def __init__(self, redis: ThreadRedis, queue: JobQueue, stale_after: float, stop: threading.Event,
                 interval: float = 1.0):
        self.queue, self.stale_after, self.stop, self.interval = queue, stale_after, stop, interval
        self._claim = redis.register_script(CLAIM_STALE_LUA)
        self._payments = PaymentStore(redis)

    def sweep(self) -> int:
        """One pass: claim the stale payments and queue each; return how many were claimed."""
        claimed = self._claim(keys=[UNFINISHED_KEY], args=[BATCH, self.stale_after])
        for queued, payment_id in enumerate(claimed):
            try:
                self.queue.put(payment_id)
            except QueueUnavailable:
                # Due again at once, so the next pass retries them as soon as beanstalkd is back.
                self._payments.mark_due(*claimed[queued:])
                raise
            log.info("Re-queued unfinished payment %s", payment_id)
        return len(claimed)

    def run(self) -> None:
        """Sweep until stop is set; an outage is logged once and waited out."""
        down = None
        while not self.stop.wait(self.interval):
            try:
                self.sweep()
                if down:
                    log.info("Sweeper: %s is back", down)
                    down = None
            except (*REDIS_DOWN_ERRORS, QueueUnavailable) as error:
                name = "beanstalkd" if isinstance(error, QueueUnavailable) else "Redis"
                if down != name:
                    log.warning("Sweeper: %s is unavailable (%s); retrying", name, describe(error))
                    down = name
