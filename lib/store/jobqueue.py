"""The beanstalkd side: job bodies, what a worker does with a job, connections with timeouts, and
the producer the API and the sweeper put jobs with."""

import json
import math
import socket
import threading
from collections import Counter
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple, TypeVar

import greenstalk

from lib.runtime.config import DEPENDENCY_TIMEOUT
from lib.store import keys

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

    It is also the lease on a payment being processed: a payment whose worker and job were both
    lost stays PROCESSING until the lease is over and STALE_AFTER more has passed (plus up to
    the 4 s the sweeper takes to come round to its shard); then the sweeper queues it again.
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
    """Puts payment jobs on the tube of one of several beanstalkd: a payment's shard decides which
    (shard mod servers), so all its jobs go to one server. Each thread has its own connection to
    each server (a client is not thread-safe), opened on first use and dropped after any error."""

    def __init__(self, addresses: tuple[tuple[str, int], ...], tube: str, ttr: int,
                 timeout: float = DEPENDENCY_TIMEOUT):
        self.addresses, self.tube, self.ttr, self.timeout = addresses, tube, ttr, timeout
        self._local = threading.local()

    def server_of(self, shard: int) -> tuple[str, int]:
        """The beanstalkd that the jobs of the shard's payments go to."""
        return self.addresses[shard % len(self.addresses)]

    def _call(self, address: tuple[str, int], command: Callable[[greenstalk.Client], T]) -> T:
        """command(client) on this thread's connection to address, opened if need be; a kept
        connection that died unnoticed (beanstalkd restarted) fails at once, and command is tried
        once more on a new one. A put tried twice may queue its job twice, which is harmless: the
        worker drops a job whose payment is in hand or finished. A timeout is not tried again:
        beanstalkd is stalled, and the caller must answer within 2 s."""
        if not hasattr(self._local, "clients"):
            self._local.clients = {}  # address -> this thread's client
        clients = self._local.clients
        if address in clients:
            try:
                return command(clients[address])
            except ConnectionError:
                self._drop(address)
            except greenstalk.NotFoundError:
                raise  # an answer (no such tube, no such job), not a broken connection
            except QUEUE_ERRORS as error:
                self._drop(address)
                raise self._unavailable(address, error) from error
        try:
            clients[address] = connect(address, self.tube, self.timeout)
            return command(clients[address])
        except greenstalk.NotFoundError:
            raise
        except QUEUE_ERRORS as error:
            self._drop(address)
            raise self._unavailable(address, error) from error

    def _drop(self, address):
        client = self._local.clients.pop(address, None)
        if client is not None:
            client.close()

    @staticmethod
    def _unavailable(address, error):
        cause = REFUSALS.get(type(error)) or str(error) or type(error).__name__
        return QueueUnavailable(f"beanstalkd at {address[0]}:{address[1]}: {cause}")

    def put(self, payment_id: str) -> int:
        """Queue the job for payment_id; raise QueueUnavailable when its beanstalkd cannot take it."""
        server = self.server_of(keys.shard_of_payment(payment_id))
        return self._call(server, lambda client: client.put(encode_job(payment_id), ttr=self.ttr))

    def counts(self) -> dict[str, dict[str, int]]:
        """Each server's jobs on the tube by state, and the total ever put, keyed "host:port"."""
        return {f"{host}:{port}": self._counts((host, port)) for host, port in self.addresses}

    def _counts(self, address):
        try:
            stats = self._call(address, lambda client: client.stats_tube(self.tube))
        except greenstalk.NotFoundError:  # beanstalkd makes a tube at its first job
            stats = {}
        return {"ready": stats.get("current-jobs-ready", 0), "reserved": stats.get("current-jobs-reserved", 0),
                "delayed": stats.get("current-jobs-delayed", 0), "buried": stats.get("current-jobs-buried", 0),
                "total_put": stats.get("total-jobs", 0)}

    def ping(self) -> None:
        """One round trip to every beanstalkd; raise QueueUnavailable for the first that does not answer."""
        for address in self.addresses:
            self._call(address, lambda client: client.using())


def total(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """JobQueue.counts summed over the servers."""
    summed = Counter()
    for server_counts in counts.values():
        summed.update(server_counts)
    return {state: summed[state] for state in ("ready", "reserved", "delayed", "buried", "total_put")}
