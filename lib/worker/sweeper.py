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
        each; return how many were queued.

        A beanstalkd that cannot take a job is not asked again in this pass: the shards it serves
        wait for the next, and the others' payments are queued meanwhile, so one server down
        among several holds back only its own. Its error is raised at the end, for the log."""
        count, down = 0, {}  # server -> the first error it gave in this pass
        for shard in shards:
            server = self.queue.server_of(shard)
            if server in down:
                continue
            claimed = self.attempts.claim_overdue(shard, BATCH, self.stale_after)
            for queued, payment_id in enumerate(claimed):
                try:
                    self.queue.put(payment_id)
                except QueueUnavailable as error:
                    # Due again at once, so a later pass retries them as soon as beanstalkd is back.
                    self.payments.mark_due(*claimed[queued:])
                    down[server] = error
                    break
                log.info("Re-queued unfinished payment %s", payment_id)
                count += 1
        if down:
            raise next(iter(down.values()))
        return count

    def run(self) -> None:
        """Sweep a share of the shards every interval until stop is set; an outage is logged once
        and waited out."""
        outages, share, turn = OutageLog(log, "Sweeper"), keys.SHARDS // PASSES_PER_ROUND, 0
        while not self.stop.wait(self.interval):
            start = turn % PASSES_PER_ROUND * share
            turn += 1  # the next share next time, even after an outage: every shard is tried in turn
            try:
                self.sweep(range(start, start + share))
                outages.answered("Redis")
                outages.answered("beanstalkd")
            except Exception as error:
                if isinstance(error, QueueUnavailable) or redis_unavailable(error):
                    outages.failed("beanstalkd" if isinstance(error, QueueUnavailable) else "Redis", describe(error))
                else:  # a bug must not silently end the sweeper: log it and carry on
                    log.exception("Sweeper: unexpected error")
