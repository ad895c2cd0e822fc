"""The Redis client both processes share: a connection per thread, timeouts and no retries."""

import hashlib
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lib.socket_timeouts import DEPENDENCY_TIMEOUT, use_kernel_timeouts

# A connection idle this long is checked before its next command, as a pool checks every one.
# Under load a thread's connection is never idle that long, so the check costs nothing there;
# and Redis cannot restart (the only way a connection we hold goes stale) that quickly.
IDLE_CHECK_AFTER = 0.01  # seconds

# Errors that mean Redis is unreachable or stalled (AuthenticationError and BusyLoadingError
# are ConnectionErrors too): the API answers them with 503, the worker waits them out.
REDIS_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def open_redis(url, timeout=DEPENDENCY_TIMEOUT):
    """A client for url that any thread may use; nothing connects until the first command.

    redis-py's default is to retry a failed command several times with backoff, which turns
    one outage into a multi-second hang; the API must answer 503 within 2 s instead.
    """
    options = dict(decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout,
                   retry=Retry(NoBackoff(), 0))
    if urlsplit(url).scheme == "redis":  # plain TCP; TLS and unix sockets keep Python's timeouts
        options["connection_class"] = KernelTimeoutConnection
    return PerThreadRedis(redis.ConnectionPool.from_url(url, **options))


class KernelTimeoutConnection(redis.Connection):
    """A TCP connection to Redis whose timeout the kernel keeps (see lib/socket_timeouts.py)."""

    def __init__(self, socket_timeout=None, **options):
        super().__init__(socket_timeout=None, **options)  # None: no poll() before each read and write
        self.kernel_timeout = socket_timeout

    def _connect(self):
        sock = super()._connect()
        use_kernel_timeouts(sock, self.kernel_timeout)
        return sock

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except redis.ConnectionError as error:
            # redis-py reports the kernel's EAGAIN as a connection error; it is a timeout.
            if isinstance(error.__context__, BlockingIOError):
                raise redis.TimeoutError(f"Redis did not answer within {self.kernel_timeout:g} s") from error
            raise


class PerThreadRedis:
    """A redis-py client whose every thread keeps one connection of a shared pool for its life.

    A plain shared client checks a connection out of its pool and back in for each command,
    under a lock and with a look at the socket; from four threads that costs more than the
    command itself (on the development machine: 8,000 EVALSHAs a second through a shared
    client, 14,000 with a connection per thread). The threads that call Redis here are
    waitress's and the worker's, which live as long as the process, so the connections are few.
    """

    def __init__(self, pool):
        self.connection_pool = pool
        self._local = threading.local()

    def client(self):
        """This thread's client, made on the thread's first use; it connects at its first command."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = _ThreadClient(connection_pool=self.connection_pool)
        return client

    def register_script(self, script):
        """A Lua script that runs on the calling thread's connection (not the registering one's)."""
        return ThreadScript(self, script)

    def __getattr__(self, name):  # every other command: the calling thread's client
        return getattr(self.client(), name)


class ThreadScript:
    """A Lua script, run by its SHA1 on the calling thread's connection: script(keys=[...], args=[...]).

    redis-py's own Script does the same, but each call also imports redis.client (to check for a
    pipeline) and finds evalsha through PerThreadRedis.__getattr__: about 7 µs more a call, and
    a payment job makes three calls. Drain A/B on the development machine, six interleaved
    rounds each, two runs: 3,001 → 3,409 and 2,832 → 3,330 jobs a second (medians).
    """

    def __init__(self, redis_client, text):
        self._redis = redis_client
        self.text = text
        # The SHA1 of the bytes Redis will be sent, which the client's encoding decides.
        self.sha = hashlib.sha1(redis_client.connection_pool.get_encoder().encode(text)).hexdigest()

    def __call__(self, keys=(), args=()):
        client = self._redis.client()
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # Redis does not know it yet, or forgot it (a restart, SCRIPT FLUSH): load it, run it.
            client.script_load(self.text)
            return client.evalsha(self.sha, len(keys), *keys, *args)


class _ThreadClient(redis.Redis):
    """One thread's client: it takes a connection from the pool at its first command and keeps
    it, checking it before use when it has sat idle."""

    def __init__(self, connection_pool):
        super().__init__(connection_pool=connection_pool)
        self._last_used = 0.0

    def execute_command(self, *args, **options):
        now = time.monotonic()
        if self.connection is None:
            self.connection = self.connection_pool.get_connection()  # connects: may raise, and retry next time
        elif now - self._last_used > IDLE_CHECK_AFTER:
            self._drop_if_stale()
        self._last_used = now
        # redis-py's own path wraps every command in its retry loop and metrics hooks. With no
        # retries (open_redis) and no metrics set up, all it would do is send and read, as here,
        # for about 10 µs more a command. A connection that fails closes itself (redis-py's
        # Connection does that on any socket error), so the next command reconnects.
        self.connection.send_command(*args)
        return self.parse_response(self.connection, args[0], **options)

    def _drop_if_stale(self):
        # The check a pool makes on every checkout. Something to read before we have asked
        # anything means the server closed the connection (Redis restarted) or left a reply
        # unread; either way the command goes out on a fresh connection instead of failing.
        if not self.connection.is_connected:
            return  # closed after an error: the command reconnects it
        try:
            stale = self.connection.can_read()
        except redis.ConnectionError:
            stale = True
        if stale:
            self.connection.disconnect()


def mask_url(url):
    """url with its password replaced by ***, for log lines: redis://:***@redis:6379/0."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def describe(error):
    """An error from Redis as a log line should put it: a refused password says so plainly."""
    if isinstance(error, redis.AuthenticationError):
        return f"Redis refused the credentials in REDIS_URL: {error}"
    return str(error)
