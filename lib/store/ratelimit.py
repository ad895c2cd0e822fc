"""The per-user token bucket: refilled, checked and spent atomically inside a Redis Lua script."""

from typing import NamedTuple

# A Lua function, not a whole script: admission (lib/store/payments.py) runs it inside the
# script that stores the payment, so taking the token and storing the payment are one atomic
# step. Concurrent requests (from any number of API processes) cannot both spend the last
# token, and the clock is Redis's own TIME, so every process agrees on it.
TAKE_TOKEN_LUA = """
-- take_token(key, capacity, window, cost, clock): key is the user's bucket, a hash {tokens,
-- at_ms}, and a missing bucket is a full one; capacity in tokens; window, seconds to refill an
-- empty bucket; cost, 1 to spend a token or 0 just to look; clock, Redis's TIME.
-- Returns: allowed 1/0, whole tokens left, seconds until a token is back, seconds until full.
local function take_token(key, capacity, window, cost, clock)
  local ms_per_token = window * 1000 / capacity
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local state = redis.call('HMGET', key, 'tokens', 'at_ms')
  local tokens = tonumber(state[1]) or capacity
  local elapsed = math.max(0, now - (tonumber(state[2]) or now))
  tokens = math.min(capacity, tokens + elapsed / ms_per_token)
  local allowed = 0
  if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
  end
  local ms_until_full = (capacity - tokens) * ms_per_token
  redis.call('HSET', key, 'tokens', tokens, 'at_ms', now)
  -- Once full again the bucket says nothing a missing key would not, so let it expire then.
  redis.call('PEXPIRE', key, math.ceil(ms_until_full) + 1)
  local retry_after = 0
  if allowed == 0 then
    retry_after = math.ceil((1 - tokens) * ms_per_token / 1000)
  end
  return allowed, math.floor(tokens), retry_after, math.ceil(ms_until_full / 1000)
end
"""


class RateLimit(NamedTuple):
    """RATE_LIMIT requests per RATE_LIMIT_WINDOW seconds per user, refilled continuously."""

    capacity: int  # tokens in a full bucket
    window: int  # seconds to refill an empty one


class Decision(NamedTuple):
    """A user's bucket after one request."""

    allowed: bool
    remaining: int  # whole requests left now
    retry_after: int  # seconds until one token is back (0 when allowed)
    reset: int  # seconds until the bucket is full
