"""The sweeper: finds unfinished payments whose time is up and queues a job for them again."""

import logging
import threading

from lib.runtime.outages import OutageLog
from lib.store import keys
from lib.store.attempts import Attempts
from lib.store.jobqueue import JobQueue, QueueUnavailable
from lib.store.payments import PaymentStore
from lib.store.redis_errors import describe, redis_unavailable

log = logging.getLogger("paypoc.sweeper")

BATCH = 500  # payments claimed at most from one shard in one pass
# Each pass (every `interval` seconds) sweeps this share of the shards, in turns, so that every
# shard is swept within 4 s: an idle worker process then runs 64 small scripts a second, not 256.
PASSES_PER_ROUND = 4


class Sweeper:
    """Re-queues the payments that have waited longer than STALE_AFTER, every shard within
    PASSES_PER_ROUND passes of `interval` seconds.

    A payment's job can be lost (beanstalkd restarted without its binlog, or the API could not
    reach it and answered 201 anyway): Redis still knows the payment is unfinished, and that
    is enough to queue it again. A duplicate job is harmless: attempts are compare-and-set.
    """

    def __init__(self, attempts: Attempts, payments: PaymentStore, queue: JobQueue, stale_after: float,
                 stop: threading.Event, interval: float = 1.0):
        self.attempts, self.payments, self.queue = attempts, payments, queue
        self.stale_after, self.stop, self.interval = stale_after, stop, interval

    def sweep(self, shards: range = range(keys.SHARDS)) -> int:
        """One pass over shards (all of them by default): claim their overdue payments and queue
        each; return how many."""
        count = 0
        for shard in shards:
            claimed = self.attempts.claim_overdue(shard, BATCH, self.stale_after)
            for queued, payment_id in enumerate(claimed):
                try:
                    self.queue.put(payment_id)
                except QueueUnavailable:
                    # Due again at once, so the next pass retries them as soon as beanstalkd is back.
                    self.payments.mark_due(*claimed[queued:])
                    raise
                log.info("Re-queued unfinished payment %s", payment_id)
            count += len(claimed)
        return count

    def run(self) -> None:
        """Sweep a share of the shards every interval until stop is set; an outage is logged once
        and waited out."""
        outages, share, turn = OutageLog(log, "Sweeper"), keys.SHARDS // PASSES_PER_ROUND, 0
        while not self.stop.wait(self.interval):
            start = turn % PASSES_PER_ROUND * share
            try:
                self.sweep(range(start, start + share))
                turn += 1
                outages.answered("Redis")
                outages.answered("beanstalkd")
            except Exception as error:
                if isinstance(error, QueueUnavailable) or redis_unavailable(error):
                    outages.failed("beanstalkd" if isinstance(error, QueueUnavailable) else "Redis", describe(error))
                else:  # a bug must not silently end the sweeper: log it and carry on
                    log.exception("Sweeper: unexpected error")
