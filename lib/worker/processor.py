"""A simulated payment processor: a charge is idempotent by payment id, and a payment can be
cancelled, after which no charge for it lands; like a real processor's payment intents."""

import random
import time
import uuid

from lib.store.redis_client import ThreadRedis

# The processor's own records live in Redis only because this is a simulation: a real
# processor keeps them on its side, and we send the payment id as the idempotency key. Each
# answer is decided in one atomic step with the lookup, so a payment charged once is never
# declined later (a replayed request gets the first answer back), and a cancelled one is never
# charged (a charge request that arrives late, from a worker that lost its lease, is refused).
CHARGE_LUA = """
-- KEYS[1]: charges, a hash payment id -> charge id; KEYS[2]: the cancelled payments, a set;
-- KEYS[3]: the count of charge requests received
-- ARGV[1]: the idempotency key (the payment id); ARGV[2]: the charge id to use if this one is new;
-- ARGV[3]: '1' when this attempt is to be declined
-- Returns {'charged' or 'replayed', charge id}, {'declined'} or {'cancelled'}.
redis.call('INCR', KEYS[3])
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {'replayed', existing}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {'cancelled'}
end
if ARGV[3] == '1' then
  return {'declined'}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'charged', ARGV[2]}
"""

CANCEL_LUA = """
-- KEYS[1]: charges; KEYS[2]: the cancelled payments
-- ARGV[1]: the payment id
-- Returns the charge id when the payment was charged (a charge cannot be cancelled), else
-- false, and from now on every charge request for it is refused.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return existing
end
redis.call('SADD', KEYS[2], ARGV[1])
return false
"""

CHARGES_KEY = "processor:charges"
CANCELLED_KEY = "processor:cancelled"
REQUESTS_KEY = "processor:requests"
DECLINED = "declined by the simulated processor"


class ChargeDeclined(Exception):
    """The processor refused this attempt; another attempt may succeed."""


class SimulatedProcessor:
    """Charges payments after a delay, declining a FAILURE_RATE share of attempts."""

    def __init__(self, redis: ThreadRedis, delay: float, failure_rate: float, rng: random.Random | None = None):
        self.delay = delay
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()
        self._charge = redis.register_script(CHARGE_LUA)
        self._cancel = redis.register_script(CANCEL_LUA)

    def charge(self, payment_id: str) -> str:
        """Charge the payment once, however often asked; return the charge id, or raise ChargeDeclined.

        The charge lands at the processor first and its answer takes `delay` seconds to come
        back, so a worker killed during the delay leaves a charged payment still PROCESSING:
        exactly the case idempotency exists for.
        """
        declined = self.rng.random() < self.failure_rate
        answer, *charge_id = self._charge(keys=[CHARGES_KEY, CANCELLED_KEY, REQUESTS_KEY],
                                          args=[payment_id, f"ch_{uuid.uuid4().hex}", "1" if declined else "0"])
        if self.delay:
            time.sleep(self.delay)
        if answer == "declined":
            raise ChargeDeclined(DECLINED)
        if answer == "cancelled":
            raise ChargeDeclined("the payment was cancelled at the processor")
        return charge_id[0]

    def cancel(self, payment_id: str) -> str | None:
        """Settle a payment that ran out of attempts: the charge id when a charge landed (it
        stands, so the payment is COMPLETED), else None, and no charge for it can land after."""
        return self._cancel(keys=[CHARGES_KEY, CANCELLED_KEY], args=[payment_id])


def charges_made(redis: ThreadRedis) -> int:
    """How many payments the processor has charged (each at most once)."""
    return redis.hlen(CHARGES_KEY)


def charge_requests(redis: ThreadRedis) -> int:
    """How many charge requests the processor has received, replays and refusals included."""
    return int(redis.get(REQUESTS_KEY) or 0)
