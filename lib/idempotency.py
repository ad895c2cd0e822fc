"""Idempotency-Key for POST /payments: the first response is kept 24 h and replayed to retries."""

import hashlib
import json
import re
from typing import NamedTuple

from lib.http_error import HTTPError
from lib.metrics import COUNTERS_KEY

REPLAY_TTL = 24 * 3600  # seconds a completed response is kept, as Stripe keeps it
IN_FLIGHT_TTL = 60  # seconds a claim lasts if its request never finishes (the API died mid-request)
# An sf-string (RFC 8941) holds printable ASCII; draft-ietf-httpapi-idempotency-key-header
# sends the key as one, so `"abc"` and the bare `abc` are both accepted and mean the same key.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]{1,255}")

# Claiming is one atomic step, so of twenty simultaneous requests with one key exactly one
# claims it; the others find its record and are told 409 (in flight) or get the replay.
CLAIM_LUA = """
-- KEYS[1]: the idempotency record, a hash; KEYS[2]: the metrics counters
-- ARGV[1]: the request's fingerprint; ARGV[2]: seconds an in-flight claim lasts
-- Returns {} when this request claimed the key, else {state, fingerprint, status, body, location}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local record = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'status', 'body', 'location')
  if record[1] == 'done' and record[2] == ARGV[1] then
    redis.call('HINCRBY', KEYS[2], 'idempotent_replays', 1)  -- this request gets the replay
  end
  return record
end
redis.call('HSET', KEYS[1], 'state', 'in-flight', 'fingerprint', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {}
"""


class Stored(NamedTuple):
    """A completed response, as it is replayed."""

    status: int
    body: str  # the JSON text
    location: str


def parse_key(header):
    """The key from an Idempotency-Key header value (None when absent), or HTTPError 400."""
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = re.sub(r'\\(["\\])', r"\1", key[1:-1])
    if not _PRINTABLE_ASCII.fullmatch(key):
        raise HTTPError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def fingerprint(*values):
    """A digest of the request's meaning: the same payment sent twice has the same fingerprint."""
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


class IdempotencyStore:
    """Records per (user_id, key): in flight while the first request runs, then its response."""

    def __init__(self, redis, replay_ttl=REPLAY_TTL):
        self._redis = redis
        self.replay_ttl = replay_ttl
        self._claim = redis.register_script(CLAIM_LUA)

    @staticmethod
    def record_key(user_id, key):
        """Keys are scoped to the user, as Stripe scopes them to an account."""
        return "idempotency:" + json.dumps([user_id, key])  # unambiguous whatever the characters

    def claim(self, user_id, key, request_fingerprint):
        """None when this request may go ahead; a Stored response to replay; or HTTPError 409 / 422."""
        found = self._claim(keys=[self.record_key(user_id, key), COUNTERS_KEY],
                            args=[request_fingerprint, IN_FLIGHT_TTL])
        if not found:
            return None
        state, stored_fingerprint, status, body, location = found
        if stored_fingerprint != request_fingerprint:
            raise HTTPError(422, "Idempotency-Key was already used with a different request body")
        if state != "done":
            raise HTTPError(409, "a request with this Idempotency-Key is still being processed; retry shortly",
                            [("Retry-After", "1")])
        return Stored(int(status), body, location)

    def complete(self, user_id, key, stored):
        """Keep the response of the request that claimed the key, for REPLAY_TTL seconds."""
        record = self.record_key(user_id, key)
        with self._redis.pipeline() as pipe:  # MULTI/EXEC: one round trip, one atomic step
            pipe.hset(record, mapping={"state": "done", "status": stored.status, "body": stored.body,
                                       "location": stored.location})
            pipe.expire(record, self.replay_ttl)
            pipe.execute()

    def release(self, user_id, key):
        """Forget a claim whose request did not create a payment, so a retry may try again."""
        self._redis.delete(self.record_key(user_id, key))
