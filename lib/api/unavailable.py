"""What a client is told when Redis or beanstalkd cannot serve now: a 503 naming why, never a 500."""

from lib.http.errors import HTTPError
from lib.runtime.outages import OutageLog
from lib.store.jobqueue import QueueUnavailable
from lib.store.redis_errors import describe, redis_unavailable, refusal

# A 503 to a POST when Redis did not answer: it may have run the admission before its answer was lost.
OUTCOME_UNKNOWN = ("payment store unavailable: the payment may or may not have been taken. Retry with the same "
                   "Idempotency-Key to find out; without one, check GET /payments?user_id=... before sending it again")
# ... and when Redis refused it: a refused command changed nothing (lib/store/redis_errors.py).
NOTHING_STORED = "Nothing was stored: it is safe to send this request again"
RETRY_SOON = [("Retry-After", "1")]


def unavailable(outages: OutageLog, error: Exception) -> HTTPError | None:
    """The 503 for an error that means Redis or beanstalkd cannot serve now, its cause logged once
    per outage; None for any other error: a bug, which the app answers with a 500."""
    if isinstance(error, QueueUnavailable):
        outages.failed("beanstalkd", str(error))
        return HTTPError(503, "job queue unavailable, try again shortly", RETRY_SOON)
    if not redis_unavailable(error):
        return None
    outages.failed("Redis", describe(error))
    cause = refusal(error)  # Redis answered "not now", and why; or it did not answer at all
    message = f"payment store unavailable: {cause}; try again shortly" if cause else \
        "payment store unavailable, try again shortly"
    return HTTPError(503, message, RETRY_SOON)
