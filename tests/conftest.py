"""Fixtures: a real redis-server and beanstalkd on free ports, or a real Redis Cluster and two
beanstalkd, and the app wired to them.

Most tests run on one Redis and one beanstalkd. A test marked @on_both_topologies runs twice: on
those, and on a Redis Cluster of three masters (each behind a FaultProxy that the cluster tells
clients to use, so faults can be injected there too) with two beanstalkd.
"""

import io
import json
import os
import resource
import signal
import threading
import uuid
from decimal import Decimal
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import greenstalk
import pytest

from lib.api.app import create_app
from lib.devtools.local_cluster import LocalCluster
from lib.devtools.local_servers import free_port, local_beanstalkd, local_redis, missing
from lib.devtools.peek import charge_requests, charges_made  # noqa: F401 (for the tests)
from lib.devtools.processes import Process, answers, wait_for
from lib.runtime.config import load_config
from lib.store import keys
from lib.store.attempts import Attempts
from lib.store.counts import read_counts
from lib.store.jobqueue import JobQueue, job_ttr
from lib.store.payments import Admission, Payment, PaymentStore
from lib.store.ratelimit import RateLimit
from lib.store.redis_client import open_redis
from lib.worker.jobs import PaymentJobs
from lib.worker.processor import SimulatedProcessor
from lib.worker.threads import PaymentWorker, start_threads
from tests.faults import FaultProxy

WALKTHROUGH_BODY = {"user_Id": "user_123", "amount": 1500, "currency": "XAF"}
NO_LIMIT = RateLimit(capacity=1_000_000, window=1)
on_both_topologies = pytest.mark.parametrize("topology", ["single", "cluster"], indirect=True)


def all_keys(redis, pattern="*"):
    """Every key matching pattern, sorted (SCAN, which reaches every master of a cluster too)."""
    return sorted(redis.scan_iter(pattern))


def unfinished_score(redis, payment_id):
    """The payment's score in its shard's unfinished index (when it should next make progress), or None."""
    return redis.zscore(keys.unfinished(keys.shard_of_payment(payment_id)), payment_id)


def counter(redis, name):
    """A counter of /metrics, summed over the shards."""
    return read_counts(redis).totals.get(name, 0)


def status_counts(redis):
    """Payments by status, summed over the shards."""
    return read_counts(redis).by_status


def store_payment(redis, user_id="u"):
    """A new PENDING payment stored (and indexed) as the API stores one; returns it."""
    payment = Payment.new(user_id, Decimal(5), "USD")
    assert PaymentStore(redis).admit(payment, NO_LIMIT).outcome is Admission.CREATED
    return payment


def pytest_configure(config):
    # Stop the run at once with the install command, rather than erroring in every test.
    # wrk: for the smoke test of `make bench`; curl: the README's commands are run as written.
    for binary in ("redis-server", "redis-cli", "beanstalkd", "wrk", "curl"):
        if problem := missing(binary):
            pytest.exit(problem, returncode=2)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = local_redis(port, data, data / "log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def beanstalkd_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("beanstalkd")
    port = free_port()
    server = local_beanstalkd(port, data / "log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def second_beanstalkd(tmp_path_factory):
    data = tmp_path_factory.mktemp("beanstalkd-2")
    server = local_beanstalkd(free_port(), data / "log").start()
    yield server
    server.stop()


class ProxiedCluster:
    """A Redis Cluster of three masters, each behind a FaultProxy that the cluster announces: every
    command a client sends reaches a master through its proxy, which can break it."""

    def __init__(self, data_dir):
        self.cluster = LocalCluster(data_dir, masters=3)
        self.proxies = [FaultProxy(node.port) for node in self.cluster.nodes]
        self.cluster.start(announce=[proxy.port for proxy in self.proxies])
        self.url = f"redis://127.0.0.1:{self.proxies[0].port}/0"

    def proxy_for(self, key):
        """The proxy in front of the master that holds key."""
        client = open_redis(self.url, cluster=True).client()
        port = client.get_node_from_key(key).port
        return next(proxy for proxy in self.proxies if proxy.port == port)

    def stop(self):
        for proxy in self.proxies:
            proxy.close()
        self.cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = ProxiedCluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def topology(request):
    """"single" (one Redis, one beanstalkd) unless a test is marked @on_both_topologies."""
    return getattr(request, "param", "single")


@pytest.fixture
def servers(topology, request):
    """This topology's (REDIS_URL, REDIS_CLUSTER, [beanstalkd ports])."""
    beanstalk_ports = [request.getfixturevalue("beanstalkd_server").port]
    if topology == "single":
        return f"redis://127.0.0.1:{request.getfixturevalue('redis_server').port}/0", False, beanstalk_ports
    return request.getfixturevalue("redis_cluster").url, True, beanstalk_ports + \
        [request.getfixturevalue("second_beanstalkd").port]


@pytest.fixture
def own_servers(tmp_path):
    """A Redis (append-only file) and a beanstalkd (no binlog) of this test's own, to stop,
    restart or freeze at will; a frozen one is thawed before it is stopped."""
    redis_port, beanstalk_port = free_port(), free_port()
    (tmp_path / "redis").mkdir()
    servers = {
        "redis": local_redis(redis_port, tmp_path / "redis", tmp_path / "redis.log"),
        "beanstalkd": local_beanstalkd(beanstalk_port, tmp_path / "beanstalkd.log"),
    }
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def many_sockets():
    """This test may open some 3,000 sockets: the soft limit on open files raised for it (skipped
    where the hard limit is lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3500
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard limit on open files ({hard}) is under the {wanted} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def redis(servers):
    """A client on an empty database (every master of a cluster)."""
    url, cluster, _ = servers
    client = open_redis(url, cluster=cluster)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def env(servers):
    """Environment for a process under test: the test servers and a tube of this test's own."""
    url, cluster, beanstalk_ports = servers
    return {"REDIS_URL": url, "REDIS_CLUSTER": "yes" if cluster else "no",
            "BEANSTALK_ADDR": ",".join(f"127.0.0.1:{port}" for port in beanstalk_ports),
            "BEANSTALK_TUBE": f"test-{uuid.uuid4().hex[:12]}",
            "PROCESSING_DELAY": "0"}


@pytest.fixture
def tubes(env, servers):
    """A greenstalk client per beanstalkd, each watching this test's tube, to look at the jobs put there."""
    clients = [greenstalk.Client(("127.0.0.1", port), encoding=None, use=env["BEANSTALK_TUBE"],
                                 watch=env["BEANSTALK_TUBE"]) for port in servers[2]]
    yield clients
    for client in clients:
        client.close()


@pytest.fixture
def tube(tubes):
    """The first beanstalkd's client of `tubes` (the only one, on one Redis and one beanstalkd)."""
    return tubes[0]


def take_jobs(tubes):
    """The payment ids of every ready job on the test's tube, over every beanstalkd, each job deleted."""
    ids = []
    for client in tubes:
        while client.stats_tube(client.using())["current-jobs-ready"]:
            job = client.reserve(timeout=0)
            ids.append(json.loads(job.body)["payment_id"])
            client.delete(job)
    return ids


class WSGIClient:
    """Calls a WSGI app in-process, through wsgiref's validator, and decodes the JSON answer."""

    def __init__(self, app):
        self.app = validator(app)

    def request(self, method, path, body=None, content_type="application/json", headers=None):
        """Returns (status, headers as a dict, decoded JSON body)."""
        status, response_headers, raw = self.request_raw(method, path, body, content_type, headers)
        assert response_headers["Content-Type"] == "application/json"
        return status, response_headers, json.loads(raw)

    def request_text(self, method, path, headers=None):
        """Returns (status, headers as a dict, body as text)."""
        status, response_headers, raw = self.request_raw(method, path, None, None, headers)
        return status, response_headers, raw.decode()

    def request_raw(self, method, path, body=None, content_type="application/json", headers=None):
        """Returns (status, headers as a dict, body bytes)."""
        environ = {}
        setup_testing_defaults(environ)
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        environ.update({"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(data),
                        "CONTENT_LENGTH": str(len(data)), "QUERY_STRING": ""})
        if content_type is not None:
            environ["CONTENT_TYPE"] = content_type
        environ.update(headers or {})
        answer = {}

        def start_response(status, response_headers, exc_info=None):
            answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

        chunks = self.app(environ, start_response)
        try:
            raw = b"".join(chunks)
        finally:
            chunks.close()
        return answer["status"], answer["headers"], raw

    def post_payment(self, body, **kwargs):
        return self.request("POST", "/payments", body, **kwargs)


def with_settings(env, settings):
    """env plus keyword settings as environment variables: max_workers=5 -> MAX_WORKERS="5"."""
    return {**env, **{name.upper(): str(value) for name, value in settings.items()}}


@pytest.fixture
def make_client(redis, env):
    """make_client(**settings): a WSGIClient on an app configured with env plus settings."""

    def make(**settings):
        config = load_config(with_settings(env, settings))
        queue = JobQueue(config.beanstalk_addr, config.beanstalk_tube, job_ttr(config.processing_delay))
        return WSGIClient(create_app(config, open_redis(config.redis_url, cluster=config.redis_cluster), queue))

    return make


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def launch(env, tmp_path):
    """launch(script, **settings) starts paypoc.py or paypoc_worker.py; all are killed at teardown."""
    processes = []

    def start(script, **settings):
        process = Process([script], with_settings(env, settings), tmp_path / f"{script}-{len(processes)}.log")
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill_all()


@pytest.fixture
def start_api(launch):
    """start_api(**settings): a running API on a free port; returns its base URL."""

    def start(**settings):
        port = free_port()
        launch("paypoc.py", port=port, **settings)
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: answers(f"{base}/health")), "the API did not start"
        return base

    return start


@pytest.fixture
def api(start_api):
    return start_api()


@pytest.fixture
def run_worker(env, redis):
    """run_worker(**settings) starts worker threads on this test's tube; they stop at teardown."""
    stops, threads = [], []

    def run(**settings):
        config = load_config(with_settings(env, settings))
        stop = threading.Event()
        attempts = Attempts(redis, job_ttr(config.processing_delay), config.max_attempts)
        processor = SimulatedProcessor(redis, config.processing_delay, config.failure_rate)
        jobs = PaymentJobs(attempts, processor, config.retry_delay)
        worker = PaymentWorker(config.beanstalk_addr, config.beanstalk_tube, jobs, stop, config.max_workers)
        stops.append(stop)
        threads.extend(start_threads(worker.run, config.max_workers, "worker"))
        return worker, stop

    yield run
    for stop in stops:
        stop.set()
    for thread in threads:
        thread.join(10)
