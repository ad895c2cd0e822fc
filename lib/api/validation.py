"""Validation of what clients send: the POST /payments body, its Idempotency-Key and the
GET /payments query; every error names what it is about."""

import re
import uuid
from decimal import Decimal
from typing import NamedTuple
from urllib.parse import parse_qsl

from lib.api.currencies import minor_units
from lib.http.errors import HTTPError
from lib.runtime.config import is_digits

MAX_AMOUNT = Decimal(10) ** 12
MAX_USER_ID_LENGTH = 128
# Accepted spellings of the user id, in a POST body and in GET /payments's query alike, compared
# in lower case: the original's curl examples send both "user_Id" and "userId".
USER_ID_KEYS = ("user_id", "userid")
DEFAULT_LIMIT, MAX_LIMIT = 10, 100  # payments per page of GET /payments, as Stripe's lists
_NUMERIC_STRING = re.compile(r"[0-9]{1,13}(\.[0-9]{1,20})?")
# Checked before anything is upper-cased: "ınr".upper() is "INR" and "ſek".upper() is "SEK", so
# a check after normalising would take look-alike letters for an ISO code.
_CURRENCY_CODE = re.compile(r"[A-Za-z]{3}")
# An sf-string (RFC 8941) holds printable ASCII; draft-ietf-httpapi-idempotency-key-header
# sends the key as one, so `"abc"` and the bare `abc` are both accepted and mean the same key.
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]{1,255}")


class PaymentRequest(NamedTuple):
    """A POST /payments body, checked and normalised."""

    user_id: str
    amount: Decimal  # without trailing zeros: 10.50 is 10.5
    currency: str  # upper case


def _invalid(message):
    return HTTPError(400, message)


def _is_user_id_key(key):
    """True for user_id under any accepted spelling (user_id, user_Id, userId... in any case);
    ASCII only, so no look-alike letter lowers into one."""
    return key.isascii() and key.lower() in USER_ID_KEYS


def _user_id(pairs):
    """The user id from (name, value) pairs, under any accepted spelling; exactly one must be given."""
    given = [(key, value) for key, value in pairs if _is_user_id_key(key)]
    if not given:
        raise _invalid("user_id is required")
    if len(given) > 1:
        raise _invalid(f"user_id is given more than once ({', '.join(key for key, _ in given)})")
    return check_user_id(given[0][1])


def check_user_id(value: object) -> str:
    """value if it is a valid user id, else HTTPError 400 naming user_id."""
    if not isinstance(value, str):
        raise _invalid("user_id must be a string")
    if not 1 <= len(value) <= MAX_USER_ID_LENGTH:
        raise _invalid(f"user_id must be 1 to {MAX_USER_ID_LENGTH} characters long")
    # isprintable() lets a space through, so whitespace is checked on its own.
    if not value.isprintable() or any(c.isspace() for c in value):
        raise _invalid("user_id must not contain whitespace or control characters")
    return value


def _currency(body):
    value = body.get("currency")
    if value is None:
        raise _invalid("currency is required")
    if not isinstance(value, str):
        raise _invalid("currency must be a string")
    if not _CURRENCY_CODE.fullmatch(value) or minor_units(value.upper()) is None:
        raise _invalid("currency must be an ISO 4217 code such as USD, EUR or XAF")
    return value.upper()


def _without_trailing_zeros(amount):
    """10.50 -> 10.5, exactly (Decimal.normalize would round anything past 28 digits)."""
    _, digits, exponent = amount.as_tuple()
    while exponent < 0 and digits and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    return Decimal((0, digits, exponent))


def _amount(body, currency):
    value = body.get("amount")
    if value is None:
        raise _invalid("amount is required")
    if isinstance(value, str) and _NUMERIC_STRING.fullmatch(value):
        value = Decimal(value)
    # The JSON reader turns every number (and NaN / Infinity) into a Decimal; anything else,
    # a boolean included, is the wrong type.
    if not isinstance(value, Decimal):
        raise _invalid("amount must be a number")
    if not value.is_finite():
        raise _invalid("amount must be a finite number")
    if value <= 0:
        raise _invalid("amount must be greater than 0")
    if value > MAX_AMOUNT:
        raise _invalid(f"amount must be at most {MAX_AMOUNT}")
    value = _without_trailing_zeros(value)
    places = minor_units(currency)
    if -value.as_tuple().exponent > places:
        allowed = "it must be a whole number" if places == 0 else f"at most {places}"
        raise _invalid(f"amount has too many decimal places for {currency}: {allowed}")
    return value


def is_payment_id(text: str) -> bool:
    """True when text is a UUID in its canonical form, the only shape a payment id has."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def parse_payment_request(body: object) -> PaymentRequest:
    """Check a decoded POST /payments body; return its fields normalised, or raise HTTPError 400."""
    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    known = {"amount", "currency"}
    unknown = [key for key in body if key not in known and not _is_user_id_key(key)]
    if unknown:
        raise _invalid(f"unknown field {unknown[0]!r}; expected user_id, amount and currency")
    user_id = _user_id(body.items())
    currency = _currency(body)
    return PaymentRequest(user_id, _amount(body, currency), currency)


def parse_key(header: str | None) -> str | None:
    """The key from an Idempotency-Key header value (None when absent), or HTTPError 400."""
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = re.sub(r'\\(["\\])', r"\1", key[1:-1])
    if not _PRINTABLE_ASCII.fullmatch(key):
        raise _invalid("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def parse_list_query(query_string: str) -> tuple[str, int, str | None]:
    """Check GET /payments's query: (user_id, limit, starting_after or None), or HTTPError 400.

    user_id is spelled as the POST body may spell it (user_Id and userId too)."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    params = {}
    for name, value in pairs:
        if _is_user_id_key(name):
            continue
        if name not in ("limit", "starting_after"):
            raise _invalid(f"unknown parameter {name!r}; expected user_id, limit and starting_after")
        if name in params:
            raise _invalid(f"{name} is given more than once")
        params[name] = value
    user_id = _user_id(pairs)
    limit = params.get("limit", str(DEFAULT_LIMIT))
    if not (is_digits(limit) and len(limit) <= 3) or not 1 <= int(limit) <= MAX_LIMIT:
        raise _invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    starting_after = params.get("starting_after")
    if starting_after is not None and not is_payment_id(starting_after):
        raise _invalid("starting_after must be the id of a payment")
    return user_id, int(limit), starting_after
