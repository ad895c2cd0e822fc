"""The HTTP contract, with the app called in-process against real Redis and beanstalkd."""

import json
import uuid

import pytest

from lib.http.jsonio import MAX_BODY_BYTES
from lib.store import keys
from tests.conftest import WALKTHROUGH_BODY, all_keys, store_payment, unfinished_score


def test_health_answers_ok(client):
    assert client.request("GET", "/health")[::2] == (200, {"status": "OK"})


def test_ready_reports_both_dependencies_up(client):
    assert client.request("GET", "/ready")[::2] == (200, {"status": "OK", "redis": "up", "beanstalkd": "up"})


def test_post_stores_a_pending_payment_queues_its_job_and_points_to_it(client, redis, tube):
    status, headers, body = client.post_payment(WALKTHROUGH_BODY)
    assert status == 201
    assert body["status"] == "success" and body["message"] == "Payment queued successfully"
    payment = body["data"]
    assert list(payment) == ["id", "user_id", "amount", "currency", "status", "attempts", "failure_reason",
                             "initiated_at", "updated_at"]
    assert (payment["user_id"], payment["amount"], payment["currency"], payment["status"]) == \
        ("user_123", 1500, "XAF", "PENDING")
    assert payment["attempts"] == 0 and payment["failure_reason"] is None
    assert str(uuid.UUID(payment["id"], version=4)) == payment["id"]
    assert payment["initiated_at"].endswith("Z") and payment["updated_at"] == payment["initiated_at"]
    assert headers["Location"] == f"/payments/{payment['id']}"
    assert redis.hget(keys.payment(payment['id']), "status") == "PENDING"
    assert unfinished_score(redis, payment["id"]) is not None  # the sweeper can find it
    job = tube.reserve(timeout=0)
    assert json.loads(job.body) == {"payment_id": payment["id"]}


def test_get_returns_the_stored_payment_as_a_bare_object(client):
    created = client.post_payment(WALKTHROUGH_BODY)[2]["data"]
    assert client.request("GET", f"/payments/{created['id']}")[::2] == (200, created)


def test_money_comes_back_exactly_as_sent(client):
    raw = b'{"user_id": "u", "amount": 19.99, "currency": "USD"}'
    created = client.post_payment(raw)[2]["data"]
    fetched = client.request("GET", f"/payments/{created['id']}")
    # Compare the JSON text itself: a float round trip could print 19.990000000000002.
    assert b'"amount":19.99,' in json.dumps(fetched[2]).replace(" ", "").encode()
    status, _, body = client.post_payment(b'{"user_id": "u", "amount": 0.3, "currency": "EUR"}')
    assert status == 201 and str(body["data"]["amount"]) == "0.3"


@pytest.mark.parametrize("path", ["/payments/does-not-exist", f"/payments/{uuid.uuid4()}"])
def test_unknown_payment_is_404(client, path):
    assert client.request("GET", path)[::2] == (404, {"error": "payment not found"})


def test_unknown_path_is_404(client):
    status, _, body = client.request("GET", "/nope")
    assert status == 404 and "error" in body


@pytest.mark.parametrize("method, path, allow", [
    ("DELETE", "/payments", "POST, GET, HEAD"), ("PUT", "/queue", "GET, HEAD"),
    ("POST", "/health", "GET, HEAD"), ("PUT", f"/payments/{uuid.uuid4()}", "GET, HEAD"),
])
def test_wrong_method_is_405_with_allow(client, method, path, allow):
    status, headers, body = client.request(method, path)
    assert status == 405 and headers["Allow"] == allow and "error" in body


@pytest.mark.parametrize("path", ["/health", "/payments/{stored}", f"/payments/{uuid.uuid4()}", "/payments"])
def test_head_answers_as_get_would_with_no_body(client, redis, path):
    path = path.format(stored=store_payment(redis).id)
    get_status, get_headers, get_body = client.request_raw("GET", path)
    head_status, head_headers, head_body = client.request_raw("HEAD", path)
    assert head_status == get_status and head_body == b"" and get_body != b""
    assert head_headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))


def test_invalid_field_is_400_naming_it_and_stores_nothing(client, redis, tube):
    status, _, body = client.post_payment({"user_id": "u", "amount": 10.123, "currency": "USD"})
    assert status == 400 and body["error"].startswith("amount")
    assert all_keys(redis) == []  # no payment, and no rate-limit token spent
    assert tube.stats_tube(tube.using())["current-jobs-ready"] == 0


@pytest.mark.parametrize("raw, message", [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"\xff\xfe{}", "UTF-8"),
    (b'{"user_id": "u", "user_id": "v", "amount": 1, "currency": "USD"}', "duplicate key"),
    (b"[" * 50_000, "nested too deeply"),
])
def test_unreadable_body_is_400(client, raw, message):
    status, _, body = client.post_payment(raw)
    assert status == 400 and message in body["error"]


def test_body_over_64_kib_is_413(client, redis):
    raw = json.dumps({"user_id": "u", "amount": 1, "currency": "USD", "pad": "x" * MAX_BODY_BYTES}).encode()
    status, _, body = client.post_payment(raw)
    assert status == 413 and "larger than" in body["error"]
    assert all_keys(redis, "payment:*") == []


def test_body_longer_than_its_content_length_claims_is_not_read_past_the_limit(client):
    raw = b'{"user_id": "u", "amount": 1, "currency": "USD"}'
    status, _, body = client.post_payment(raw, headers={"CONTENT_LENGTH": "10"})
    assert status == 400  # only the first 10 bytes were read: not valid JSON


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(client, content_type):
    status, _, body = client.post_payment(WALKTHROUGH_BODY, content_type=content_type)
    assert status == 415 and "application/json" in body["error"]


def test_json_content_type_with_charset_is_accepted(client):
    assert client.post_payment(WALKTHROUGH_BODY, content_type="application/json; charset=utf-8")[0] == 201


def test_every_post_carries_the_rate_limit_headers(client):
    _, headers, _ = client.post_payment(WALKTHROUGH_BODY)
    assert headers["RateLimit-Policy"] == '"default";q=5;w=60'
    assert headers["RateLimit"] == '"default";r=4;t=12'  # one of 5 tokens spent; 12 s refills one


def test_the_originals_loop_gets_five_201s_then_five_429s(client):
    answers = [client.post_payment({"userId": "test", "amount": 100, "currency": "XAF"}) for _ in range(10)]
    assert [status for status, _, _ in answers] == [201] * 5 + [429] * 5
    status, headers, body = answers[5]
    assert body == {"error": "Rate limit exceeded. Try again later."}
    assert 1 <= int(headers["Retry-After"]) <= 12
    assert headers["RateLimit"].startswith('"default";r=0;t=')


def test_rate_limit_is_per_user(client):
    for _ in range(5):
        client.post_payment({"user_id": "alice", "amount": 1, "currency": "USD"})
    assert client.post_payment({"user_id": "alice", "amount": 1, "currency": "USD"})[0] == 429
    assert client.post_payment({"user_id": "bob", "amount": 1, "currency": "USD"})[0] == 201


def test_an_unexpected_error_is_500_without_a_traceback(client, monkeypatch):
    def broken(payment):
        raise RuntimeError("secret internals")

    from lib.store.payments import Payment
    monkeypatch.setattr(Payment, "to_json", broken)
    status, _, body = client.post_payment(WALKTHROUGH_BODY)
    assert (status, body) == (500, {"error": "internal error"})
