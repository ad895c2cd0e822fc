"""The figures kept per shard (lib/store/keys.py), summed over every shard: what /metrics shows."""

from collections import Counter

from lib.store import keys
from lib.store.redis_client import RedisClient


def totals(redis: RedisClient) -> tuple[Counter, Counter]:
    """(the counters, the payments by status), each summed over every shard, in one pipeline."""
    with redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            pipe.hgetall(keys.counters(shard))
            pipe.hgetall(keys.status_counts(shard))
        replies = pipe.execute()
    counters, status_counts = Counter(), Counter()
    for shard_counters, shard_status_counts in zip(replies[::2], replies[1::2]):
        counters.update({name: int(value) for name, value in shard_counters.items()})
        status_counts.update({status: int(value) for status, value in shard_status_counts.items()})
    return counters, status_counts

