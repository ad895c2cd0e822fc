"""The beanstalkd side: job bodies, what a worker does with a job, connections with timeouts, and
the producer the API and the sweeper put jobs with."""

import json
import math
import socket
import threading
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple, TypeVar

import greenstalk

from lib.runtime.config import DEPENDENCY_TIMEOUT

T = TypeVar("T")

# Errors that mean beanstalkd is unreachable or the connection is broken: OSError covers
# refused connections, resets and socket timeouts; greenstalk.Error covers server error replies.
QUEUE_ERRORS = (OSError, greenstalk.Error)

# beanstalkd's refusals of a put, in words: it answered, and took no job (BURIED: it kept the
# job, buried, where no worker takes it). The payment is kept for the sweeper to queue later.
REFUSALS = {
    greenstalk.DrainingError: "beanstalkd is draining and takes no new jobs",
    greenstalk.OutOfMemoryError: "beanstalkd is out of memory",
    greenstalk.InternalError: "beanstalkd reported an internal error",
    greenstalk.JobTooBigError: "the job is larger than beanstalkd's max-job-size",
    greenstalk.BuriedError: "beanstalkd ran out of memory and buried the job",
}


# What an attempt may take beyond the processing delay: a few Redis and beanstalkd round trips,
# each bounded by DEPENDENCY_TIMEOUT, with room to spare.
TTR_MARGIN = 10


def job_ttr(processing_delay: float) -> int:
    """Seconds a worker may hold a job before beanstalkd hands it to another: well over the delay.

    It is also the lease on a payment being processed, so it bounds how long a payment whose
    worker and job were both lost stays PROCESSING before the sweeper takes it up again.
    """
    return math.ceil(processing_delay) + TTR_MARGIN


class QueueUnavailable(Exception):
    """beanstalkd could not be reached or refused the job."""


class JobAction(Enum):
    """What a worker does with a job once its attempt is over."""

    DELETE = "delete"  # done with: the payment is finished, or the job was a duplicate
    BURY = "bury"  # kept aside where the beanstalkd UI shows it: unreadable, or its payment FAILED
    RELEASE = "release"  # handed out again after a delay: a retry


class Disposal(NamedTuple):
    """A job's action, and for RELEASE the seconds before beanstalkd hands it out again."""

    action: JobAction
    delay: int = 0


def encode_job(payment_id: str) -> bytes:
    """The job body: just the payment id, since Redis holds the payment itself."""
    return json.dumps({"payment_id": payment_id}).encode()


def decode_job(body: bytes) -> str:
    """The payment id in a job body, or ValueError when the body is not one of ours."""
    data = json.loads(body)  # bad JSON or bad UTF-8 raises a ValueError subclass
    if not isinstance(data, dict) or not isinstance(data.get("payment_id"), str):
        raise ValueError("job body has no payment_id")
    return data["payment_id"]


def connect(address: tuple[str, int], tube: str, timeout: float, watch: bool = False) -> greenstalk.Client:
    """A greenstalk client using (or, for a worker, watching) tube, whose socket has a timeout.

    greenstalk opens its own sockets without a timeout, and accepts a connected socket instead:
    given one with a timeout, a stalled beanstalkd costs `timeout` seconds (TimeoutError), not
    a hung thread. Bodies stay bytes (encoding=None), so a job that is not UTF-8 reaches our
    code instead of failing in reserve.
    """
    sock = socket.create_connection(address, timeout=timeout)
    try:
        return greenstalk.Client(sock, encoding=None, use=tube, watch=tube if watch else "default")
    except BaseException:
        sock.close()
        raise


class JobQueue:
    """Puts payment jobs on the tube; each API thread has its own connection (a client is not
    thread-safe), opened on first use and dropped after any error so the next call reconnects."""

    def __init__(self, address: tuple[str, int], tube: str, ttr: int, timeout: float = DEPENDENCY_TIMEOUT):
        self.address, self.tube, self.ttr, self.timeout = address, tube, ttr, timeout
        self._local = threading.local()

    def _call(self, command: Callable[[greenstalk.Client], T]) -> T:
        """command(client) on this thread's connection, opened if need be; a kept connection that
        died unnoticed (beanstalkd restarted) fails at once, and command is tried once more on a
        new one. A put tried twice may queue its job twice, which is harmless: the worker drops
        a job whose payment is in hand or finished. A timeout is not tried again: beanstalkd is
        stalled, and the caller must answer within 2 s."""
        client = getattr(self._local, "client", None)
        if client is not None:
            try:
                return command(client)
            except ConnectionError:
                self._drop()
            except greenstalk.NotFoundError:
                raise  # an answer (no such tube, no such job), not a broken connection
            except QUEUE_ERRORS as error:
                self._drop()
                raise self._unavailable(error) from error
        try:
            client = self._local.client = connect(self.address, self.tube, self.timeout)
            return command(client)
        except greenstalk.NotFoundError:
            raise
        except QUEUE_ERRORS as error:
            self._drop()
            raise self._unavailable(error) from error

    def _drop(self):
        client, self._local.client = getattr(self._local, "client", None), None
        if client is not None:
            client.close()

    def _unavailable(self, error):
        cause = REFUSALS.get(type(error)) or str(error) or type(error).__name__
        return QueueUnavailable(f"beanstalkd at {self.address[0]}:{self.address[1]}: {cause}")

    def put(self, payment_id: str) -> int:
        """Queue the job for payment_id; raise QueueUnavailable when beanstalkd cannot take it."""
        return self._call(lambda client: client.put(encode_job(payment_id), ttr=self.ttr))

    def counts(self) -> dict[str, int]:
        """The tube's jobs by state and the total ever put, as the beanstalkd UI shows them."""
        try:
            stats = self._call(lambda client: client.stats_tube(self.tube))
        except greenstalk.NotFoundError:  # beanstalkd makes a tube at its first job
            stats = {}
        return {"ready": stats.get("current-jobs-ready", 0), "reserved": stats.get("current-jobs-reserved", 0),
                "delayed": stats.get("current-jobs-delayed", 0), "buried": stats.get("current-jobs-buried", 0),
                "total_put": stats.get("total-jobs", 0)}

    def ping(self) -> None:
        """One round trip to beanstalkd; raise QueueUnavailable when it does not answer."""
        self._call(lambda client: client.using())
