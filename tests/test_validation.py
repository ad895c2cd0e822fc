"""POST /payments bodies: what is accepted, how it is normalised, and the 400 each mistake gets."""

from decimal import Decimal

import pytest

from lib.api.validation import parse_payment_request
from lib.http.errors import HTTPError
from lib.http.jsonio import parse_json


def parse(text):
    """(user_id, amount as the store writes it, currency) of a POST body."""
    user_id, amount, currency = parse_payment_request(parse_json(text.encode()))
    return user_id, format(amount, "f"), currency


def error_of(text):
    with pytest.raises(HTTPError) as raised:
        parse(text)
    assert raised.value.status == 400
    return raised.value.message


def test_the_originals_two_spellings_of_user_id_are_both_accepted():
    assert parse('{"user_Id": "user_123", "amount": 1500, "currency": "XAF"}') == ("user_123", "1500", "XAF")
    assert parse('{"userId": "test", "amount": 100, "currency": "XAF"}') == ("test", "100", "XAF")
    assert parse('{"USER_ID": "u", "amount": 1, "currency": "XAF"}') == ("u", "1", "XAF")


def test_user_id_given_under_two_spellings_is_refused_as_ambiguous():
    assert "more than once" in error_of('{"user_id": "a", "userId": "b", "amount": 1, "currency": "USD"}')


@pytest.mark.parametrize("amount, currency, stored", [
    ("1500", "XAF", "1500"),
    ("19.99", "USD", "19.99"),
    ("0.3", "EUR", "0.3"),
    ("10.50", "USD", "10.5"),
    ("1500.0", "XAF", "1500"),
    ("1.5e3", "XAF", "1500"),
    ('"19.99"', "USD", "19.99"),
    ("1000000000000", "USD", "1000000000000"),
    ("0.001", "KWD", "0.001"),
    ("0.0001", "CLF", "0.0001"),
])
def test_amounts_are_kept_exactly_in_canonical_form(amount, currency, stored):
    assert parse(f'{{"user_id": "u", "amount": {amount}, "currency": "{currency}"}}')[1] == stored


@pytest.mark.parametrize("amount, currency, message", [
    ("1500.5", "XAF", "too many decimal places for XAF: it must be a whole number"),
    ("10.123", "USD", "too many decimal places for USD: at most 2"),
    ("1.000000000000000000000000000000001", "USD", "too many decimal places"),
    ("0", "USD", "amount must be greater than 0"),
    ("-5", "USD", "amount must be greater than 0"),
    ("-0.0", "USD", "amount must be greater than 0"),
    ("1000000000000.01", "USD", "amount must be at most 1000000000000"),
    ("1e400", "USD", "amount must be at most"),
    ("NaN", "USD", "amount must be a finite number"),
    ("Infinity", "USD", "amount must be a finite number"),
    ("-Infinity", "USD", "amount must be a finite number"),
    ("true", "USD", "amount must be a number"),
    ("null", "USD", "amount is required"),
    ('"12abc"', "USD", "amount must be a number"),
    ('"1e3"', "USD", "amount must be a number"),
    ("[1]", "USD", "amount must be a number"),
])
def test_bad_amounts_are_refused_naming_the_field(amount, currency, message):
    assert message in error_of(f'{{"user_id": "u", "amount": {amount}, "currency": "{currency}"}}')


def test_currency_is_normalised_to_upper_case():
    assert parse('{"user_id": "u", "amount": 1, "currency": "xaf"}')[2] == "XAF"


@pytest.mark.parametrize("currency", ['"ABC"', '"US"', '"USDD"', '"XAU"', '"ÜSD"', "840", "null", '""'])
def test_unknown_or_malformed_currencies_are_refused(currency):
    assert error_of(f'{{"user_id": "u", "amount": 1, "currency": {currency}}}').startswith("currency")


# Each of these upper-cases to a real code ("ınr".upper() == "INR"), so only a check made
# before normalising refuses them.
@pytest.mark.parametrize("currency", ["ınr", "ſek", "uſd", "\uff35SD"])
def test_look_alike_letters_are_not_a_currency_code(currency):
    assert error_of(f'{{"user_id": "u", "amount": 1, "currency": "{currency}"}}').startswith("currency")


def test_a_look_alike_spelling_of_user_id_is_an_unknown_field():
    # "uſer_id".casefold() == "user_id": only plain ASCII spellings name the field.
    assert "unknown field" in error_of('{"u\u017fer_id": "u", "amount": 1, "currency": "USD"}')


@pytest.mark.parametrize("user_id, message", [
    ('""', "1 to 128 characters"),
    ('"' + "x" * 129 + '"', "1 to 128 characters"),
    ('"a b"', "whitespace or control"),
    ('"tab\\there"', "whitespace or control"),
    ('"nul\\u0000"', "whitespace or control"),
    ('"\\ud800"', "whitespace or control"),
    ("42", "must be a string"),
    ("null", "must be a string"),
])
def test_bad_user_ids_are_refused_naming_the_field(user_id, message):
    error = error_of(f'{{"user_id": {user_id}, "amount": 1, "currency": "USD"}}')
    assert error.startswith("user_id") and message in error


def test_user_id_of_128_printable_characters_is_accepted():
    assert parse('{"user_id": "' + "é" * 128 + '", "amount": 1, "currency": "USD"}')[0] == "é" * 128


@pytest.mark.parametrize("body, message", [
    ("[]", "must be a JSON object"),
    ('"text"', "must be a JSON object"),
    ('{"amount": 1, "currency": "USD"}', "user_id is required"),
    ('{"user_id": "u", "currency": "USD"}', "amount is required"),
    ('{"user_id": "u", "amount": 1}', "currency is required"),
    ('{"user_id": "u", "amount": 1, "currency": "USD", "note": "x"}', "unknown field 'note'"),
])
def test_missing_and_unknown_fields_are_named(body, message):
    assert message in error_of(body)


def test_json_numbers_are_read_as_decimals_never_floats():
    assert parse_json(b'{"a": 0.1, "b": 7}') == {"a": Decimal("0.1"), "b": Decimal("7")}
    assert isinstance(parse_json(b'{"a": 0.1}')["a"], Decimal)
