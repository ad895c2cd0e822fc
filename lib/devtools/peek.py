"""What the tests and the bench read straight from Redis: the simulated processor's records, summed
over every shard."""

from lib.store import keys
from lib.store.redis_client import RedisClient


def charge_requests(redis: RedisClient) -> int:
    """How many charge requests the simulated processor has received, over every shard."""
    with redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            pipe.get(keys.charge_requests(shard))
        return sum(int(value or 0) for value in pipe.execute())


def charges_made(redis: RedisClient) -> int:
    """How many payments the simulated processor has charged (each at most once), over every shard."""
    with redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            pipe.hlen(keys.charges(shard))
        return sum(pipe.execute())
