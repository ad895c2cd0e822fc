"""Per-user token bucket in Redis: checked and spent atomically by one Lua script."""

from typing import NamedTuple

# One script call is one atomic step, so concurrent requests (from any number of API replicas)
# cannot both spend the last token. The clock is Redis's own TIME, so replicas agree on it.
TOKEN_BUCKET_LUA = """
-- KEYS[1]: the caller's bucket, a hash {tokens, at_ms}; a missing bucket is a full one
-- ARGV[1]: capacity, in tokens; ARGV[2]: window, seconds to refill an empty bucket
-- Returns {allowed 1/0, whole tokens left, seconds until a token is back, seconds until full}
local capacity = tonumber(ARGV[1])
local ms_per_token = tonumber(ARGV[2]) * 1000 / capacity
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at_ms')
local tokens = tonumber(state[1]) or capacity
local elapsed = math.max(0, now - (tonumber(state[2]) or now))
tokens = math.min(capacity, tokens + elapsed / ms_per_token)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
local ms_until_full = (capacity - tokens) * ms_per_token
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at_ms', now)
-- Once full again the bucket says nothing a missing key would not, so let it expire then.
redis.call('PEXPIRE', KEYS[1], math.ceil(ms_until_full) + 1)
local retry_after = 0
if allowed == 0 then
  retry_after = math.ceil((1 - tokens) * ms_per_token / 1000)
end
return {allowed, math.floor(tokens), retry_after, math.ceil(ms_until_full / 1000)}
"""


class Decision(NamedTuple):
    """The outcome of one request against a bucket."""

    allowed: bool
    remaining: int  # whole requests left now
    retry_after: int  # seconds until one token is back (0 when allowed)
    reset: int  # seconds until the bucket is full


class TokenBucket:
    """RATE_LIMIT requests per RATE_LIMIT_WINDOW seconds per user, refilled continuously."""

    def __init__(self, redis, capacity, window):
        self.capacity = capacity
        self.window = window
        self._take = redis.register_script(TOKEN_BUCKET_LUA)
        # draft-ietf-httpapi-ratelimit-headers: the policy is fixed, so it is written once.
        self.policy_header = f'"default";q={capacity};w={window}'

    def take(self, user_id):
        """Spend one of user_id's tokens if there is one; return the Decision either way."""
        allowed, remaining, retry_after, reset = self._take(
            keys=[f"ratelimit:{user_id}"], args=[self.capacity, self.window])
        return Decision(bool(allowed), remaining, retry_after, reset)

    @staticmethod
    def header(decision):
        """The RateLimit header value describing the bucket after this decision."""
        return f'"default";r={decision.remaining};t={decision.reset}'
