"""A simulated payment processor: a charge is idempotent by payment id, and a payment can be
cancelled, after which no charge for it lands; like a real processor's payment intents."""

import random
import time
import uuid

from lib.store import keys
from lib.store.redis_client import RedisClient

# The processor's own records live in Redis only because this is a simulation: a real
# processor keeps them on its side, and we send the payment id as the idempotency key. Each
# answer is decided in one atomic step with the lookup, so a payment charged once is never
# declined later (a replayed request gets the first answer back), and a cancelled one is never
# charged (a charge request that arrives late, from a worker that lost its lease, is refused).
CHARGE_LUA = """
-- KEYS: 1 the charges (payment id -> charge id), 2 the cancelled payments, 3 the count of charge requests
-- ARGV: 1 the idempotency key (the payment id), 2 the charge id to use if this one is new,
-- 3 '1' when this attempt is to be declined
-- Returns {'charged' or 'replayed', charge id}, {'declined'} or {'cancelled'}.
local charges, cancelled, requests = KEYS[1], KEYS[2], KEYS[3]
local payment_id, new_charge_id, decline = ARGV[1], ARGV[2], ARGV[3] == '1'
redis.call('INCR', requests)
local existing = redis.call('HGET', charges, payment_id)
if existing then
  return {'replayed', existing}
end
if redis.call('SISMEMBER', cancelled, payment_id) == 1 then
  return {'cancelled'}
end
if decline then
  return {'declined'}
end
redis.call('HSET', charges, payment_id, new_charge_id)
return {'charged', new_charge_id}
"""

CANCEL_LUA = """
-- KEYS: 1 the charges, 2 the cancelled payments
-- ARGV: 1 the payment id
-- Returns the charge id when the payment was charged (a charge cannot be cancelled), else
-- false, and from now on every charge request for it is refused.
local charges, cancelled, payment_id = KEYS[1], KEYS[2], ARGV[1]
local existing = redis.call('HGET', charges, payment_id)
if existing then
  return existing
end
redis.call('SADD', cancelled, payment_id)
return false
"""

DECLINED = "declined by the simulated processor"


def charge_keys(payment_id: str) -> list[str]:
    """The keys CHARGE_LUA is given (CANCEL_LUA, the first two): all in the payment's shard."""
    shard = keys.shard_of_payment(payment_id)
    return [keys.charges(shard), keys.cancelled(shard), keys.charge_requests(shard)]


class ChargeDeclined(Exception):
    """The processor refused this attempt; another attempt may succeed."""


class SimulatedProcessor:
    """Charges payments after a delay, declining a FAILURE_RATE share of attempts."""

    def __init__(self, redis: RedisClient, delay: float, failure_rate: float, rng: random.Random | None = None):
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
        answer, *charge_id = self._charge(keys=charge_keys(payment_id),
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
        return self._cancel(keys=charge_keys(payment_id)[:2], args=[payment_id])

