"""The figures the scripts keep per shard as they change payments (totals, payments by status),
summed over every shard in one pipeline."""

from collections import Counter
from typing import NamedTuple

from lib.store import keys
from lib.store.payments import Status
from lib.store.redis_client import RedisClient


class Counts(NamedTuple):
    """What GET /metrics and GET /summary show of the store."""

    totals: dict[str, int]  # counter field (payments_created, rate_limited...) -> total so far
    by_status: dict[str, int]  # every status, in Status order -> payments in it now


def read_counts(redis: RedisClient) -> Counts:
    """The counters and the payments by status as the scripts last left them, summed over the shards."""
    with redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            pipe.hgetall(keys.counters(shard))
            pipe.hgetall(keys.status_counts(shard))
        replies = pipe.execute()
    totals, by_status = Counter(), Counter()
    for shard_totals, shard_by_status in zip(replies[::2], replies[1::2]):
        totals.update({field: int(value) for field, value in shard_totals.items()})
        by_status.update({status: int(value) for status, value in shard_by_status.items()})
    # A status no payment has reached yet has no field: it counts 0.
    return Counts(dict(totals), {status.value: by_status[status.value] for status in Status})
