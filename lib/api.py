"""The HTTP API: its route table, its handlers, and create_app to wire them to Redis and beanstalkd."""

import logging
from typing import NamedTuple

from lib.heartbeat import live_workers
from lib.http_error import HTTPError
from lib.idempotency import IdempotencyStore, Stored, fingerprint, parse_key
from lib.jobqueue import JobQueue, QueueUnavailable
from lib.jsonio import dumps, parse_json
from lib.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from lib.metrics import COUNTERS_KEY, STATUS_COUNTS_KEY, RequestDurations, render
from lib.payments import PaymentStore, is_payment_id, new_payment, to_json
from lib.ratelimit import TokenBucket
from lib.redis_client import REDIS_DOWN_ERRORS, describe
from lib.validation import parse_list_query, parse_payment_request
from lib.wsgi import App, Response

log = logging.getLogger("paypoc.api")

RATE_LIMITED = "Rate limit exceeded. Try again later."


class Services(NamedTuple):
    """Everything a handler may use, built once by create_app."""

    redis: object
    payments: PaymentStore
    limiter: TokenBucket
    queue: JobQueue
    idempotency: IdempotencyStore
    durations: RequestDurations


def health(services, request):
    """Liveness: the process answers. Touches no dependency."""
    return Response(200, {"status": "OK"})


def ready(services, request):
    """Readiness: 200 when Redis and beanstalkd both answer, 503 (same keys) when either does not."""
    checks = {"redis": services.redis.ping, "beanstalkd": services.queue.ping}
    body = {"status": "OK"}
    for name, ping in checks.items():
        try:
            ping()
            body[name] = "up"
        except (*REDIS_DOWN_ERRORS, QueueUnavailable) as error:
            log.warning("readiness: %s is down: %s", name, describe(error))
            body[name] = "down"
    if "down" in body.values():
        body["status"] = "UNAVAILABLE"
        return Response(503, body)
    return Response(200, body)


def create_payment(services, request):
    """Validate, honour an Idempotency-Key, rate-limit, store as PENDING, queue; answer 201."""
    headers = [("RateLimit-Policy", services.limiter.policy_header)]
    try:
        user_id, amount, currency = parse_payment_request(request.json())
        key = parse_key(request.header("Idempotency-Key"))
        if key is None:
            return _accept(services, user_id, amount, currency, headers)
        # Claimed before the rate limit, so a replay (or a 409 / 422) spends no token.
        replay = services.idempotency.claim(user_id, key, fingerprint(user_id, amount, currency))
        if replay:
            return Response(replay.status, parse_json(replay.body.encode()),
                            headers + [("Location", replay.location), ("Idempotent-Replayed", "true")])
        try:
            response = _accept(services, user_id, amount, currency, headers)
        except BaseException:
            _forget(services, user_id, key)
            raise
        _remember(services, user_id, key, response)
        return response
    except HTTPError as error:
        error.headers[:0] = headers
        raise


def _accept(services, user_id, amount, currency, headers):
    """Rate-limit, store and queue a validated payment; headers gains the RateLimit header."""
    payment = new_payment(user_id, amount, currency)
    # One round trip takes the token and, if there was one, stores the payment (indexed as
    # unfinished). Stored before it is queued, so a worker never takes a job whose payment is
    # missing, and a job that never makes it is found by the sweeper.
    decision = services.payments.add(payment, services.limiter)
    headers.append(("RateLimit", services.limiter.header(decision)))
    if not decision.allowed:
        raise HTTPError(429, RATE_LIMITED, [("Retry-After", str(decision.retry_after))])
    try:
        services.queue.put(payment["id"])
    except QueueUnavailable as error:
        # The outbox pattern: Redis has the payment, so it is accepted; the worker's sweeper
        # queues it as soon as beanstalkd answers again.
        log.warning("Payment %s stored but not queued (%s); the sweeper will queue it", payment["id"], error)
        try:
            services.payments.mark_due(payment["id"])  # sooner than STALE_AFTER, if Redis allows
        except REDIS_DOWN_ERRORS:
            pass
    body = {"status": "success", "message": "Payment queued successfully", "data": to_json(payment)}
    return Response(201, body, headers + [("Location", f"/payments/{payment['id']}")])


def _remember(services, user_id, key, response):
    """Keep a 201 for replay. The payment exists whatever happens here, so a failure is logged, not
    answered: the claim then lapses after a minute, and a retry after that would pay again."""
    location = dict(response.headers)["Location"]
    try:
        services.idempotency.complete(user_id, key, Stored(response.status, dumps(response.body), location))
    except REDIS_DOWN_ERRORS as error:
        log.error("Idempotency-Key %r of user %s: response not kept (%s)", key, user_id, error)


def _forget(services, user_id, key):
    """Drop the claim of a request that created nothing (429, outage), so a retry may go ahead."""
    try:
        services.idempotency.release(user_id, key)
    except REDIS_DOWN_ERRORS:
        pass  # the claim lapses by itself after IN_FLIGHT_TTL


def list_payments(services, request):
    """A user's payments, newest first, a page at a time: ?user_id=X&limit=N&starting_after=ID."""
    user_id, limit, starting_after = parse_list_query(request.query)
    try:
        payments, has_more = services.payments.list_for_user(user_id, limit, starting_after)
    except LookupError:
        raise HTTPError(400, "starting_after is not a payment of this user") from None
    return Response(200, {"data": [to_json(payment) for payment in payments], "has_more": has_more})


def queue_status(services, request):
    """What the queue holds now, and which worker processes are alive (by their heartbeats)."""
    return Response(200, {"tube": services.queue.tube, "jobs": services.queue.counts(),
                          "workers": live_workers(services.redis)})


def metrics(services, request):
    """Prometheus text format: counters and gauges from Redis and beanstalkd, this process's histogram."""
    with services.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(COUNTERS_KEY)
        pipe.hgetall(STATUS_COUNTS_KEY)
        counters, status_counts = pipe.execute()
    text = render(counters, status_counts, services.queue.counts(), services.durations)
    return Response(200, text, content_type=METRICS_CONTENT_TYPE)


def get_payment(services, request, id):
    """The payment with this id, as stored now; 404 when there is none."""
    payment = services.payments.get(id) if is_payment_id(id) else None
    if payment is None:
        raise HTTPError(404, "payment not found")
    return Response(200, to_json(payment))


ROUTES = [
    ("GET", "/health", health),
    ("GET", "/ready", ready),
    ("POST", "/payments", create_payment),
    ("GET", "/payments", list_payments),
    ("GET", "/payments/{id}", get_payment),
    ("GET", "/queue", queue_status),
    ("GET", "/metrics", metrics),
]

# Exceptions meaning a dependency is down, and what the client is told: a 503, never a 500.
UNAVAILABLE = [
    (REDIS_DOWN_ERRORS, "payment store unavailable, try again shortly"),
    (QueueUnavailable, "job queue unavailable, try again shortly"),
]


def create_app(config, redis, queue):
    """The WSGI app, given the parsed config, a redis-py client and a JobQueue."""
    limiter = TokenBucket(config.rate_limit, config.rate_limit_window)
    durations = RequestDurations()
    services = Services(redis, PaymentStore(redis), limiter, queue, IdempotencyStore(redis), durations)
    return App(ROUTES, services, UNAVAILABLE, durations)
