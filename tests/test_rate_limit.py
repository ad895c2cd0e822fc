"""The token bucket: atomic under concurrency, refilled at RATE_LIMIT / RATE_LIMIT_WINDOW per second."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from lib.api.app import limit_header
from lib.store import keys
from lib.store.payments import Payment, PaymentStore
from lib.store.ratelimit import RateLimit
from tests.conftest import all_keys, on_both_topologies


def take(redis, bucket, user_id="u"):
    """Ask for one payment's worth of bucket, as POST /payments does; the rate-limit Decision."""
    return PaymentStore(redis).admit(Payment.new(user_id, Decimal(1), "USD"), bucket).decision


@on_both_topologies
def test_40_concurrent_posts_for_one_user_get_exactly_10_through(make_client, redis):
    client = make_client(rate_limit=10)
    body = {"user_id": "racer", "amount": 5, "currency": "USD"}
    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(lambda _: client.post_payment(body)[0], range(40)))
    assert statuses.count(201) == 10 and statuses.count(429) == 30
    assert len(all_keys(redis, "payment:*")) == 10


def test_bucket_refills_at_the_configured_rate(redis):
    bucket = RateLimit(capacity=2, window=2)  # one token a second
    assert [take(redis, bucket).allowed for _ in range(3)] == [True, True, False]
    denied = take(redis, bucket)
    assert denied.retry_after == 1 and denied.remaining == 0
    # 1.5 s pass for the bucket (its last refill moved back, by Redis's clock): 1.5 tokens are
    # back, which is one request and not two.
    seconds, microseconds = redis.time()
    redis.hset(keys.rate_limit("u"), mapping={"tokens": 0, "at_ms": seconds * 1000 + microseconds // 1000 - 1500})
    assert [take(redis, bucket).allowed for _ in range(2)] == [True, False]
    assert len(all_keys(redis, "payment:*")) == 3  # a refused request stores nothing


def test_a_full_bucket_leaves_no_key_behind(redis):
    take(redis, RateLimit(capacity=1, window=1))
    assert 0 < redis.pttl(keys.rate_limit("u")) <= 1001  # gone once a full bucket would say nothing new


def test_headers_count_down_and_report_seconds_until_full(redis):
    decisions = [take(redis, RateLimit(capacity=5, window=60)) for _ in range(6)]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert limit_header(decisions[0]) == ("RateLimit", '"default";r=4;t=12')
    assert decisions[-1].allowed is False and 1 <= decisions[-1].retry_after <= 12
    assert 48 <= decisions[-1].reset <= 60
