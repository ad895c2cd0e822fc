"""Idempotency-Key for POST /payments: reading the header, and naming what a key's record holds."""

import hashlib
import json
import re

from lib.http.errors import HTTPError

REPLAY_TTL = 24 * 3600  # seconds a key's record is kept, as Stripe keeps it
# An sf-string (RFC 8941) holds printable ASCII; draft-ietf-httpapi-idempotency-key-header
# sends the key as one, so `"abc"` and the bare `abc` are both accepted and mean the same key.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]{1,255}")


def parse_key(header: str | None) -> str | None:
    """The key from an Idempotency-Key header value (None when absent), or HTTPError 400."""
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = re.sub(r'\\(["\\])', r"\1", key[1:-1])
    if not _PRINTABLE_ASCII.fullmatch(key):
        raise HTTPError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def fingerprint(*values: str) -> str:
    """A digest of the request's meaning: the same payment sent twice has the same fingerprint."""
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


def record_key(user_id: str, key: str) -> str:
    """The Redis key of a key's record. Keys are scoped to the user, as Stripe scopes them to an account."""
    return "idempotency:" + json.dumps([user_id, key])  # unambiguous whatever the characters
