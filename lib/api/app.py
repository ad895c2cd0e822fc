"""The HTTP API: its route table, its handlers, and create_app to wire them to Redis and beanstalkd."""

import logging
from typing import NamedTuple

from lib.api.dashboard import CONTENT_TYPE as PAGE_CONTENT_TYPE
from lib.api.dashboard import Page, load_page
from lib.api.durations import RequestDurations
from lib.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from lib.api.metrics import COUNTERS, render
from lib.api.unavailable import NOTHING_STORED, OUTCOME_UNKNOWN, RETRY_SOON, unavailable
from lib.api.validation import (
    is_payment_id,
    parse_key,
    parse_list_query,
    parse_payment_request,
)
from lib.http.errors import HTTPError
from lib.http.jsonio import dumps, parse_json
from lib.http.wsgi import App, Request, Response
from lib.runtime.config import Config
from lib.runtime.outages import OutageLog
from lib.store.counts import read_counts
from lib.store.jobqueue import JobQueue, QueueUnavailable, total
from lib.store.payments import Admission, Payment, PaymentStore, UnknownCursor
from lib.store.ratelimit import Decision, RateLimit
from lib.store.redis_client import WRITE_CHECK_LUA, RedisClient, RedisScript
from lib.store.redis_errors import describe, redis_unavailable, refusal
from lib.store.workers import live_workers

log = logging.getLogger("paypoc.api")

RATE_LIMITED = "Rate limit exceeded. Try again later."


class Services(NamedTuple):
    """Everything a handler may use, built once by create_app."""

    redis: RedisClient
    payments: PaymentStore
    limit: RateLimit
    queue: JobQueue
    durations: RequestDurations
    page: Page
    # Shared by the API's threads, so an outage is one log line. It ends when the dependency
    # takes a payment again (a POST, or /ready's checks), not at a read: a Redis out of memory
    # or read-only still serves reads.
    outages: OutageLog
    write_check: RedisScript  # GET /ready: would Redis take a write now?


def policy_header(limit: RateLimit) -> tuple[str, str]:
    """RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers): the bucket every user has."""
    return "RateLimit-Policy", f'"default";q={limit.capacity};w={limit.window}'


def limit_header(decision: Decision) -> tuple[str, str]:
    """RateLimit: the user's bucket after this request, requests left and seconds until full."""
    return "RateLimit", f'"default";r={decision.remaining};t={decision.reset}'


def health(services: Services, request: Request) -> Response:
    """Liveness: the process answers. Touches no dependency."""
    return Response(200, {"status": "OK"})


def ready(services: Services, request: Request) -> Response:
    """Readiness: 200 when Redis would take a write and beanstalkd answers, 503 (same keys) when
    either cannot; the log says why, once per outage."""
    # Each check runs inside the try below, connecting included.
    checks = {"Redis": services.write_check, "beanstalkd": services.queue.ping}
    body = {"status": "OK"}
    for name, check in checks.items():
        try:
            check()
            services.outages.answered(name)
            body[name.lower()] = "up"
        except Exception as error:
            if unavailable(services.outages, error) is None:
                raise
            body[name.lower()] = "down"
    if "down" in body.values():
        body["status"] = "UNAVAILABLE"
        return Response(503, body)
    return Response(200, body)


def create_payment(services: Services, request: Request) -> Response:
    """Validate; admit (Idempotency-Key, rate limit and storage in one atomic step); queue; answer 201."""
    # Every answer to a POST carries RateLimit-Policy, a refusal of bad input included.
    policy = [policy_header(services.limit)]
    try:
        user_id, amount, currency = parse_payment_request(request.json())
        key = parse_key(request.header("Idempotency-Key"))
    except HTTPError as error:
        raise HTTPError(error.status, error.message, policy + error.headers) from None
    payment = Payment.new(user_id, amount, currency)
    body = {"status": "success", "message": "Payment queued successfully", "data": payment.to_json()}
    try:
        # With a key, the 201's text is kept with it, so that a retry gets this same answer.
        admitted = services.payments.admit(payment, services.limit, key, dumps(body) if key else "")
    except Exception as error:
        if unavailable(services.outages, error) is None:  # this logs the outage, once
            raise
        cause = refusal(error)
        if cause is None:  # no answer: Redis may have run the admission, so the line names the user
            log.warning("POST /payments for user %s: 503, outcome unknown (%s)", user_id, describe(error))
            raise HTTPError(503, OUTCOME_UNKNOWN, policy + RETRY_SOON) from None
        raise HTTPError(503, f"payment store unavailable: {cause}. {NOTHING_STORED}", policy + RETRY_SOON) from None
    services.outages.answered("Redis")
    headers = policy + [limit_header(admitted.decision)]
    if admitted.outcome is Admission.LIMITED:
        raise HTTPError(429, RATE_LIMITED, headers + [("Retry-After", str(admitted.decision.retry_after))])
    if admitted.outcome is Admission.MISMATCH:
        raise HTTPError(422, "Idempotency-Key was already used with a different request body", headers)
    headers.append(("Location", f"/payments/{admitted.payment_id}"))
    # A replay queues the job too: the first request may have died before it could. A job too
    # many is harmless (the worker drops a job whose payment is in hand or finished).
    _queue(services, admitted.payment_id)
    if admitted.outcome is Admission.REPLAYED:
        return Response(201, parse_json(admitted.first_reply.encode()), headers + [("Idempotent-Replayed", "true")])
    return Response(201, body, headers)


def _queue(services: Services, payment_id: str) -> None:
    """Queue the payment's job. Redis has the payment already, so it is accepted even when
    beanstalkd cannot take the job (the outbox pattern): the worker's sweeper queues it."""
    try:
        services.queue.put(payment_id)
        services.outages.answered("beanstalkd")
    except QueueUnavailable as error:
        log.warning("Payment %s stored but not queued (%s); the sweeper will queue it", payment_id, error)
        try:
            services.payments.mark_due(payment_id)  # sooner than STALE_AFTER, if Redis allows
        except Exception as mark_error:
            if not redis_unavailable(mark_error):
                raise


def list_payments(services: Services, request: Request) -> Response:
    """A user's payments, newest first, a page at a time: ?user_id=X&limit=N&starting_after=ID."""
    user_id, limit, starting_after = parse_list_query(request.query)
    try:
        page = services.payments.list_for_user(user_id, limit, starting_after)
    except UnknownCursor:
        raise HTTPError(400, "starting_after is not a payment of this user") from None
    return Response(200, {"data": [payment.to_json() for payment in page.payments], "has_more": page.has_more})


def _queue_now(services: Services) -> dict:
    """The tube's jobs by state and the worker processes alive (by their heartbeats)."""
    counts = services.queue.counts()
    return {"tube": services.queue.tube, "jobs": total(counts), "servers": counts, "workers": live_workers(services.redis)}


def queue_status(services: Services, request: Request) -> Response:
    """What the queue holds now, on each beanstalkd and in all, and which worker processes are alive."""
    return Response(200, _queue_now(services))


def summary(services: Services, request: Request) -> Response:
    """The system at a glance, as JSON for the page at /: payments by status, totals, the queue, the workers."""
    counts = read_counts(services.redis)
    totals = {field: counts.totals.get(field, 0) for field, _ in COUNTERS}
    return Response(200, {"payments": counts.by_status, "totals": totals, **_queue_now(services)})


def metrics(services: Services, request: Request) -> Response:
    """Prometheus text format: counters and gauges from Redis and beanstalkd, every API process's histogram."""
    counts = read_counts(services.redis)
    text = render(counts.totals, counts.by_status, services.queue.counts(), services.durations)
    return Response(200, text, content_type=METRICS_CONTENT_TYPE)


def dashboard(services: Services, request: Request) -> Response:
    """The page that shows the system at work (lib/api/dashboard.html), read at start-up."""
    return Response(200, services.page.html, services.page.headers, content_type=PAGE_CONTENT_TYPE)


def get_payment(services: Services, request: Request, id: str) -> Response:
    """The payment with this id, as stored now; 404 when there is none."""
    payment = services.payments.get(id) if is_payment_id(id) else None
    if payment is None:
        raise HTTPError(404, "payment not found")
    return Response(200, payment.to_json())


ROUTES = [
    ("GET", "/", dashboard),
    ("GET", "/health", health),
    ("GET", "/ready", ready),
    ("POST", "/payments", create_payment),
    ("GET", "/payments", list_payments),
    ("GET", "/payments/{id}", get_payment),
    ("GET", "/queue", queue_status),
    ("GET", "/summary", summary),
    ("GET", "/metrics", metrics),
]

# What health checks call (the compose file's every 5 s, an orchestrator's): kept out of the INFO access log.
PROBES = ("/health", "/ready")


def create_app(config: Config, redis: RedisClient, queue: JobQueue, durations: RequestDurations | None = None) -> App:
    """The WSGI app, given the parsed config, a Redis client, a JobQueue and, when several
    processes serve it, this process's row of their shared RequestDurations."""
    durations = durations or RequestDurations.for_routes(ROUTES)
    outages = OutageLog(log, "API", meanwhile="")
    payments = PaymentStore(redis, wait_replicas=config.redis_wait_replicas)
    limit = RateLimit(config.rate_limit, config.rate_limit_window)
    services = Services(redis, payments, limit, queue, durations, load_page(), outages,
                        redis.register_script(WRITE_CHECK_LUA))
    return App(ROUTES, services, lambda error: unavailable(outages, error), durations, PROBES)
