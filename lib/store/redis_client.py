"""The Redis client of a process: redis-py's, a connection per thread (or a cluster client), short
timeouts and no retries."""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from lib.runtime.config import DEPENDENCY_TIMEOUT
from lib.store.redis_errors import REDIS_DOWN_ERRORS, NotReplicated

# GET /ready's question, "could a payment be stored now?", asked without storing anything: a
# script whose first line declares flags (Redis 7; none declared: it may write) is refused up
# front by a Redis that refuses writes, where PING would get PONG from one out of memory.
WRITE_CHECK_LUA = "#!lua\nreturn 1"

REPLICA_WAIT_MS = 500  # how long a write waits for replicas (REDIS_WAIT_REPLICAS), within the 2 s an answer may take


# A connection unused for longer is pinged before its next command. Under load a thread's
# connection is never idle this long; and no Redis restarts (closing it) that quickly. The cost:
# at low traffic (make demo) every command comes after a pause, so it makes two round trips.
IDLE_CHECK_AFTER = 0.01  # seconds


def open_redis(url: str, timeout: float = DEPENDENCY_TIMEOUT, cluster: bool = False) -> "RedisClient":
    """A client for url (any node of it, with cluster) that every thread may use; nothing
    connects until the first command.

    A failed command is never sent again: redis-py would retry it by default, but a timeout
    can come after Redis ran the command, and a payment must not be stored twice.
    """
    options = {"decode_responses": True, "socket_timeout": timeout, "socket_connect_timeout": timeout,
               "retry": Retry(NoBackoff(), 0)}
    if cluster:
        return ClusterRedis(lambda: redis.RedisCluster.from_url(url, **options))
    return ThreadRedis(redis.ConnectionPool.from_url(url, **options))


class RedisClient:
    """What the store uses: every command and script goes to client(), the right redis-py client
    for the calling thread. ThreadRedis and ClusterRedis make it."""

    def client(self) -> redis.Redis | redis.RedisCluster:
        """The redis-py client for the calling thread."""
        raise NotImplementedError

    def client_for(self, key: str) -> redis.Redis:
        """A client on the Redis that holds key (the same as client() on a single Redis)."""
        return self.client()

    def register_script(self, text: str) -> "RedisScript":
        """A Lua script that runs on the calling thread's client: script(keys=[...], args=[...])."""
        return RedisScript(text, self)

    def run_on_replicas(self, script: "RedisScript", keys: Sequence[str], args: Sequence, replicas: int) -> Any:
        """Run script, then WAIT for `replicas` replicas on the same connection (WAIT counts those
        that have that connection's writes): script's answer once they have its writes, else
        NotReplicated. It costs two more round trips: WAIT, and the check that Redis knows the script."""
        try:
            with self.client_for(keys[0]).pipeline(transaction=False) as pipe:
                script(keys=keys, args=args, client=pipe)
                pipe.wait(replicas, REPLICA_WAIT_MS)
                answer, acknowledged = pipe.execute()
        except (*REDIS_DOWN_ERRORS, redis.exceptions.MovedError) as error:
            # On a cluster this went to the master by hand, not through the cluster client: let that
            # client meet the failure too, so that it learns the new layout (a failover, a moved slot).
            try:
                self.exists(keys[0])
            except (*REDIS_DOWN_ERRORS, redis.exceptions.MovedError):
                pass
            raise NotReplicated(f"not confirmed: {error}") from error
        if acknowledged < replicas:
            raise NotReplicated(f"{acknowledged} of {replicas} replica(s) had it after {REPLICA_WAIT_MS} ms")
        return answer

    def __getattr__(self, command: str) -> Any:
        return getattr(self.client(), command)  # every command: the calling thread's client


class ThreadRedis(RedisClient):
    """One Redis: a redis-py client per thread, each keeping one connection of a shared pool for its life.

    A shared client takes a connection out of its pool and puts it back for every command, which
    under load costs more than many commands (about 7 % of a POST or a GET, measured beside a
    stock client). So each thread gets a client that keeps one (single_connection_client), and
    pings it first after a pause, so that a connection a Redis restart closed is replaced
    before a command goes out on it. redis-py's own health_check_interval would send that
    ping too, but through the client's retry policy: with no retries (see open_redis) a failed
    ping fails the command. A service with little traffic is better served by the stock
    client, whose pool checks each connection before use without a round trip.
    """

    def __init__(self, pool: redis.ConnectionPool):
        self.connection_pool = pool
        self._local = threading.local()

    def client(self) -> redis.Redis:
        """This thread's client; made at the thread's first command, checked after a pause."""
        local, now = self._local, time.monotonic()
        client = getattr(local, "client", None)
        if client is not None and now - local.used > IDLE_CHECK_AFTER:
            try:
                client.ping()
            except redis.ConnectionError:  # closed by the server: a new connection, below
                client.close()
                client = None
            except redis.ResponseError:
                pass  # refused (PING is, while Redis cannot save): an answer, so the connection is alive
        if client is None:
            client = local.client = redis.Redis(connection_pool=self.connection_pool, single_connection_client=True)
        local.used = now
        return client


class ClusterRedis(RedisClient):
    """A Redis Cluster: redis-py's RedisCluster, one shared by every thread (it keeps a pool per node).

    It sends each command, and each script, to the master of its keys' slot, follows MOVED after
    a failover, and refuses a script whose keys are in more than one slot. It asks the nodes for
    the cluster's layout when it is made, so it is made at the first command: the API starts,
    and answers 503, while the cluster is away.
    """

    def __init__(self, make: Callable[[], redis.RedisCluster]):
        self._make, self._client = make, None
        self._lock = threading.Lock()

    def client(self) -> redis.RedisCluster:
        """The shared client, made now if this is the first command."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()  # no node answers: an outage (lib/store/redis_errors.py)
        return self._client

    def client_for(self, key: str) -> redis.Redis:
        """A client on the master that holds key (RedisCluster's own, for that node)."""
        cluster = self.client()
        return cluster.get_redis_connection(cluster.get_node_from_key(key))


class RedisScript:
    """A Lua script run with redis-py's Script on the calling thread's client, loaded into Redis
    again whenever Redis has forgotten it (a restart, a failover)."""

    def __init__(self, text: str, redis_client: RedisClient):
        self._script = Script(None, text.encode())  # bytes: it needs no client to find its SHA1 (a str would: to encode it)
        self._redis = redis_client

    @property
    def sha(self) -> str:
        """The script's SHA1, by which Redis knows it."""
        return self._script.sha

    def __call__(self, keys: Sequence = (), args: Sequence = (), client: Any = None) -> Any:
        """Run the script; on the calling thread's client, or on client (a pipeline, say)."""
        return self._script(keys=keys, args=args, client=client or self._redis.client())
