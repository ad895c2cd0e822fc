"""A simulated payment processor whose charge is idempotent by payment id, like a real one's."""

import random
import time
import uuid

# The processor's own ledger lives in Redis only because this is a simulation: a real processor
# keeps it on its side and we send the payment id as the idempotency key. The decision to
# decline is made in the same atomic step as the lookup, so a payment that was charged once is
# never declined later: a replayed request gets the first answer back.
CHARGE_LUA = """
-- KEYS[1]: ledger, a hash payment id -> charge id; KEYS[2]: counter of charge requests received
-- ARGV[1]: idempotency key (the payment id); ARGV[2]: charge id to use if this one is new;
-- ARGV[3]: '1' when this attempt is to be declined
-- Returns {charge id, 1 if new or 0 if replayed}, or false when declined.
redis.call('INCR', KEYS[2])
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {existing, 0}
end
if ARGV[3] == '1' then
  return false
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {ARGV[2], 1}
"""

LEDGER_KEY = "processor:charges"
REQUESTS_KEY = "processor:requests"


class ChargeDeclined(Exception):
    """The processor refused this attempt; another attempt may succeed."""


class SimulatedProcessor:
    """Charges payments after a delay, declining a FAILURE_RATE share of attempts."""

    def __init__(self, redis, delay, failure_rate, rng=None):
        self.delay = delay
        self.failure_rate = failure_rate
        self.rng = rng or random.Random()
        self._charge = redis.register_script(CHARGE_LUA)

    def charge(self, payment_id):
        """Charge the payment once, whatever the number of calls; return the charge id.

        The charge lands at the processor first and its answer takes `delay` seconds to come
        back, so a worker killed during the delay leaves a charged payment still PROCESSING:
        exactly the case idempotency exists for.
        """
        declined = self.rng.random() < self.failure_rate
        result = self._charge(keys=[LEDGER_KEY, REQUESTS_KEY],
                              args=[payment_id, f"ch_{uuid.uuid4().hex}", "1" if declined else "0"])
        if self.delay:  # even sleep(0) is a system call, and a drain at zero delay makes millions
            time.sleep(self.delay)
        if result is None:
            raise ChargeDeclined("declined by the simulated processor")
        return result[0]


def charges_made(redis):
    """How many payments the processor has charged (each at most once)."""
    return redis.hlen(LEDGER_KEY)


def charge_requests(redis):
    """How many charge requests the processor has received, replays and declines included."""
    return int(redis.get(REQUESTS_KEY) or 0)
