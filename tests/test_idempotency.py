"""Idempotency-Key on POST /payments: replay, mismatch (422), concurrency, scope, expiry."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from lib.devtools.processes import wait_for
from lib.store import keys
from lib.store.payments import Admission, Payment, PaymentStore
from lib.store.ratelimit import RateLimit
from tests.conftest import WALKTHROUGH_BODY, all_keys, on_both_topologies, take_jobs

KEY = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
pytestmark = on_both_topologies


def post(client, body=WALKTHROUGH_BODY, headers=KEY):
    return client.post_payment(body, headers=headers)


def test_a_retry_with_the_same_key_and_body_replays_the_first_response(client, redis):
    first_status, first_headers, first_body = post(client)
    status, headers, body = post(client)
    assert (status, body) == (first_status, first_body) == (201, first_body)
    assert headers["Idempotent-Replayed"] == "true" and headers["Location"] == first_headers["Location"]
    assert "Idempotent-Replayed" not in first_headers
    assert len(all_keys(redis, "payment:*")) == 1


def test_a_replay_spends_no_rate_limit_token(client):
    post(client)
    for _ in range(10):
        status, headers, _ = post(client)  # ten replays; the bucket holds five
        assert status == 201 and headers["RateLimit"].startswith('"default";r=4;')
    _, headers, _ = client.post_payment({**WALKTHROUGH_BODY, "amount": 7})  # no key: a new payment
    assert headers["RateLimit"].startswith('"default";r=3;')  # two tokens spent in all


def test_the_same_key_with_a_different_body_is_422(client, redis):
    post(client)
    status, _, body = post(client, {**WALKTHROUGH_BODY, "amount": 1501})
    assert status == 422 and "different request body" in body["error"]
    assert len(all_keys(redis, "payment:*")) == 1


def test_twenty_concurrent_requests_with_one_key_make_exactly_one_payment(client, redis):
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: post(client), range(20)))
    # Admission is one atomic step: one request creates, the nineteen others are its replays.
    assert [status for status, _, _ in answers] == [201] * 20
    assert len({body["data"]["id"] for _, _, body in answers}) == 1 and len(all_keys(redis, "payment:*")) == 1
    assert sum(headers.get("Idempotent-Replayed") == "true" for _, headers, _ in answers) == 19


def test_a_key_is_forgotten_after_24_hours(client, redis):
    first = post(client)[2]["data"]["id"]
    record = keys.idempotency("user_123", "order-42")
    assert 86_000 < redis.ttl(record) <= 86_400
    redis.pexpire(record, 1)  # let the 24 hours pass
    assert wait_for(lambda: not redis.exists(record))
    redis.delete(keys.rate_limit("user_123"))
    _, headers, body = post(client)
    assert body["data"]["id"] != first and "Idempotent-Replayed" not in headers


def test_a_quoted_structured_field_key_is_the_same_key(client):
    first = post(client)[2]
    assert post(client, headers={"HTTP_IDEMPOTENCY_KEY": '"order-42"'})[2] == first


def test_keys_are_scoped_to_the_user(client, redis):
    post(client)
    status, headers, _ = post(client, {**WALKTHROUGH_BODY, "user_Id": "someone_else"})
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert len(all_keys(redis, "payment:*")) == 2


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, '""', "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_400_and_stores_nothing(client, redis, key):
    status, _, body = post(client, headers={"HTTP_IDEMPOTENCY_KEY": key})
    assert status == 400 and "Idempotency-Key" in body["error"]
    assert all_keys(redis) == []


def test_a_request_that_fails_validation_stores_nothing(client, redis):
    status, _, _ = post(client, {**WALKTHROUGH_BODY, "amount": "lots"})
    assert status == 400 and all_keys(redis) == []


def test_a_rate_limited_request_does_not_keep_its_key(client, redis):
    for n in range(5):
        client.post_payment({**WALKTHROUGH_BODY, "amount": n + 1})
    assert post(client)[0] == 429
    assert all_keys(redis, "idempotency:*") == []  # a later retry with the key may succeed


def test_a_replay_queues_the_payments_job_in_case_the_first_request_died_before_it_could(client, redis, tubes):
    user, amount, currency = WALKTHROUGH_BODY["user_Id"], Decimal(1500), WALKTHROUGH_BODY["currency"]
    # As an API killed between admission and queuing leaves it: stored, keyed, no job.
    first = Payment.new(user, amount, currency)
    admitted = PaymentStore(redis).admit(first, RateLimit(5, 60), "order-42", '{"data": "first"}')
    assert admitted.outcome is Admission.CREATED
    status, headers, _ = post(client)
    assert status == 201 and headers["Idempotent-Replayed"] == "true"
    assert take_jobs(tubes) == [first.id]
