"""The figures the scripts keep as they change payments (totals, payments by status), read in one round trip."""

from typing import NamedTuple

from lib.store import keys
from lib.store.payments import Status
from lib.store.redis_client import ThreadRedis


class Counts(NamedTuple):
    """What GET /metrics and GET /summary show of the store."""

    totals: dict[str, int]  # counter field (payments_created, rate_limited...) -> total so far
    by_status: dict[str, int]  # every status, in Status order -> payments in it now


def read_counts(redis: ThreadRedis) -> Counts:
    """The counters hash and the payments by status, as the scripts last left them."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.counters())
        pipe.hgetall(keys.status_counts())
        totals, by_status = pipe.execute()
    # A status no payment has reached yet has no field: it counts 0.
    return Counts({field: int(value) for field, value in totals.items()},
                  {status.value: int(by_status.get(status.value, 0)) for status in Status})
