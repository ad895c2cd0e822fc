"""Fixtures: a real redis-server and beanstalkd on free ports, and the app wired to them."""

import io
import json
import os
import resource
import signal
import threading
import uuid
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

from decimal import Decimal

import greenstalk
import pytest

from lib.api.app import create_app
from lib.devtools.local_servers import free_port, local_beanstalkd, local_redis, missing
from lib.devtools.processes import Process, answers, wait_for
from lib.runtime.config import load_config
from lib.store import keys
from lib.store.attempts import Attempts
from lib.store.jobqueue import JobQueue, job_ttr
from lib.store.payments import Admission, Payment, PaymentStore
from lib.store.ratelimit import RateLimit
from lib.store.redis_client import open_redis
from lib.worker.jobs import PaymentJobs
from lib.worker.processor import SimulatedProcessor
from lib.worker.threads import PaymentWorker, start_threads

WALKTHROUGH_BODY = {"user_Id": "user_123", "amount": 1500, "currency": "XAF"}
NO_LIMIT = RateLimit(capacity=1_000_000, window=1)


def store_payment(redis, user_id="u"):
    """A new PENDING payment stored (and indexed) as the API stores one; returns it."""
    payment = Payment.new(user_id, Decimal(5), "USD")
    assert PaymentStore(redis).admit(payment, NO_LIMIT).outcome is Admission.CREATED
    return payment


def charges_made(redis):
    """How many payments the simulated processor has charged (each at most once)."""
    return redis.hlen(keys.charges())


def charge_requests(redis):
    """How many charge requests the simulated processor has received, replays and refusals included."""
    return int(redis.get(keys.charge_requests()) or 0)


def pytest_configure(config):
    # Stop the run at once with the install command, rather than erroring in every test.
    for binary in ("redis-server", "beanstalkd", "wrk"):  # wrk: for the smoke test of `make bench`
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
def redis(redis_server):
    """A client on an empty database."""
    client = open_redis(f"redis://127.0.0.1:{redis_server.port}/0")
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def env(redis_server, beanstalkd_server):
    """Environment for a process under test: the test servers and a tube of this test's own."""
    return {"REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
            "BEANSTALK_ADDR": f"127.0.0.1:{beanstalkd_server.port}",
            "BEANSTALK_TUBE": f"test-{uuid.uuid4().hex[:12]}",
            "PROCESSING_DELAY": "0"}


@pytest.fixture
def tube(env, beanstalkd_server):
    """A greenstalk client watching this test's tube, to look at the jobs the API put there."""
    client = greenstalk.Client(("127.0.0.1", beanstalkd_server.port), encoding=None, use=env["BEANSTALK_TUBE"],
                               watch=env["BEANSTALK_TUBE"])
    yield client
    client.close()


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
        return WSGIClient(create_app(config, open_redis(config.redis_url), queue))

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
        if process.running():
            process.stop(signal.SIGKILL)


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
        worker = PaymentWorker(config.beanstalk_addr, config.beanstalk_tube, jobs, stop)
        stops.append(stop)
        threads.extend(start_threads(worker.run, config.max_workers, "worker"))
        return worker, stop

    yield run
    for stop in stops:
        stop.set()
    for thread in threads:
        thread.join(10)
