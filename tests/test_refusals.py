"""Redis refusing commands (out of memory, unable to save, a read-only replica, busy, loading its
data) and beanstalkd refusing a job, each made for real: a 503 naming the cause within 2 s (for
beanstalkd, the payment taken for the outbox), nothing stored by a refused request, one log line
per outage and no traceback, and every payment finished once the dependency takes commands again."""

import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import greenstalk
import pytest
import redis as redis_py

from lib.devtools.local_servers import free_port, local_redis
from lib.devtools.processes import answers, http, wait_for
from lib.store import keys
from lib.store.redis_client import open_redis
from tests.conftest import counter, unfinished_score

CONTRACT_SECONDS = 2.0
USER, KEY = "refused-user", "refused-once"
BODY = {"user_id": USER, "amount": 100, "currency": "XAF"}
NOTHING_STORED = "Nothing was stored: it is safe to send this request again"


@pytest.fixture
def env(own_servers):
    """Overrides conftest's env: the processes under test use this test's own servers."""
    return {"REDIS_URL": f"redis://127.0.0.1:{own_servers['redis'].port}/0",
            "BEANSTALK_ADDR": f"127.0.0.1:{own_servers['beanstalkd'].port}",
            "BEANSTALK_TUBE": "payment_jobs", "PROCESSING_DELAY": "0"}


@pytest.fixture
def store(own_servers):
    """A plain redis-py client on this test's Redis, to make it refuse and to look inside."""
    client = redis_py.Redis(port=own_servers["redis"].port, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def spare_redis(tmp_path):
    """spare_redis(*options): one more redis-server on a free port, stopped at teardown."""
    servers = []

    def start(*options):
        port = free_port()
        (tmp_path / f"spare-{port}").mkdir()
        servers.append(local_redis(port, tmp_path / f"spare-{port}", tmp_path / f"spare-{port}.log", "", *options))
        return servers[-1].start()

    yield start
    for server in servers:
        server.stop()


def start_api(launch):
    """A real `python paypoc.py` on a free port, one process (its log is the one counted): (its base
    URL, its process)."""
    port = free_port()
    process = launch("paypoc.py", port=port, rate_limit=1000, api_processes=1)
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: answers(f"{base}/health")), "the API did not start"
    return base, process


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def status_of(api, payment_id):
    return http("GET", f"{api}/payments/{payment_id}")[2].get("status")


def queue_stats(own_servers):
    with greenstalk.Client(("127.0.0.1", own_servers["beanstalkd"].port)) as client:
        return client.stats()


# Each makes this test's Redis refuse for real, and returns what makes it accept again.

def out_of_memory(store, port, spare_redis):
    """maxmemory just above what Redis uses, no eviction, then filled: every write is refused (OOM)."""
    store.config_set("maxmemory-policy", "noeviction")
    store.config_set("maxmemory", store.info("memory")["used_memory"] + 100_000)
    # Filled by one script: Redis checks memory before a script's first write only, so this one
    # megabyte goes in, well past the limit, and no freed buffer brings Redis back under it.
    store.eval("for _ = 1, 100 do redis.call('RPUSH', KEYS[1], string.rep('x', 10000)) end", 1, "filler")

    def free_memory():
        store.delete("filler")
        store.config_set("maxmemory", 0)

    return free_memory


def unable_to_save(store, port, spare_redis):
    """Snapshots on, and a background save that fails (a directory stands where its file goes):
    Redis refuses writes (MISCONF) until a save succeeds (stop-writes-on-bgsave-error, the default)."""
    in_the_way = Path(store.config_get("dir")["dir"]) / "dump.rdb"
    (in_the_way / "a-directory").mkdir(parents=True)
    store.config_set("save", "3600 1")
    store.bgsave()
    assert wait_for(lambda: store.info("persistence")["rdb_last_bgsave_status"] == "err")

    def save_again():
        shutil.rmtree(in_the_way)
        store.bgsave()
        assert wait_for(lambda: store.info("persistence")["rdb_last_bgsave_status"] == "ok")

    return save_again


def a_replica_after_a_failover(store, port, spare_redis):
    """A switchover: a replica of this Redis is promoted and this one made its replica, while the
    processes still use this one. It refuses writes (READONLY) until it is promoted back."""
    other = spare_redis("--replicaof", "127.0.0.1", str(port))
    promoted = redis_py.Redis(port=other.port, decode_responses=True)
    assert wait_for(lambda: promoted.info("replication")["master_link_status"] == "up")
    promoted.replicaof("NO", "ONE")
    store.replicaof("127.0.0.1", other.port)
    assert wait_for(lambda: store.info("replication").get("master_link_status") == "up"
                    and store.info("persistence")["loading"] == 0)
    return lambda: store.replicaof("NO", "ONE")


def busy_with_a_script(store, port, spare_redis):
    """A script that runs on (a loop) past busy-reply-threshold: Redis answers every other command
    BUSY until the script is killed."""
    store.config_set("busy-reply-threshold", 100)  # milliseconds; 5 s by default

    def loop():
        try:
            redis_py.Redis(port=port).eval("while true do end", 0)
        except redis_py.ResponseError:
            pass  # killed, as it should be

    looping = threading.Thread(target=loop)
    looping.start()

    def busy():
        try:
            redis_py.Redis(port=port).ping()
        except redis_py.ResponseError as error:
            return str(error).startswith("BUSY")
        return False

    assert wait_for(busy)

    def kill():
        redis_py.Redis(port=port).script_kill()
        looping.join(5)

    return kill


# How Redis is made to refuse, the cause the 503 names, and whether reads are still served.
REFUSALS = {
    "out of memory": (out_of_memory, "it is out of memory and refuses writes", True),
    "unable to save": (unable_to_save, "it cannot save to disk and refuses writes", True),
    "read-only replica": (a_replica_after_a_failover, "it is a read-only replica and refuses writes", True),
    "busy with a script": (busy_with_a_script, "it is busy running a script", False),
}


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_refusing_redis_is_a_503_naming_the_cause_with_nothing_stored_and_all_finishes_once_it_accepts(
        refusal, launch, own_servers, store, spare_redis):
    refuse, cause, reads_served = REFUSALS[refusal]
    api, api_process = start_api(launch)
    in_flight = http("POST", f"{api}/payments", {**BODY, "user_id": "earlier"})[2]["data"]["id"]
    accept = refuse(store, own_servers["redis"].port, spare_redis)

    (status, headers, body), seconds = timed(lambda: http("POST", f"{api}/payments", BODY, {"Idempotency-Key": KEY}))
    assert (status, body, seconds < CONTRACT_SECONDS) == \
        (503, {"error": f"payment store unavailable: {cause}. {NOTHING_STORED}"}, True)
    assert headers["Retry-After"] == "1" and headers["RateLimit-Policy"]
    (status, _, body), seconds = timed(lambda: http("GET", f"{api}/payments/{in_flight}"))
    assert seconds < CONTRACT_SECONDS
    assert (status, body.get("status") or body["error"]) == \
        ((200, "PENDING") if reads_served else (503, f"payment store unavailable: {cause}; try again shortly"))
    (status, _, body), seconds = timed(lambda: http("GET", f"{api}/ready"))
    assert (status, body["redis"], body["beanstalkd"], seconds < CONTRACT_SECONDS) == (503, "down", "up", True)

    # The worker meets the refusal at its first job: it gives the job back, and again, on one log line.
    worker = launch("paypoc_worker.py")
    assert wait_for(lambda: queue_stats(own_servers)["cmd-release"] >= 2)
    accept()

    # The refused POST left nothing: no payment, no token spent, no key recorded, no count.
    assert store.zcard(keys.user_payments(USER)) == 0
    assert store.exists(keys.rate_limit(USER), keys.idempotency(USER, KEY)) == 0
    assert counter(store, "payments_created") == 1
    # So the same request, sent again, is a new payment, not the replay of one.
    status, headers, body = http("POST", f"{api}/payments", BODY, {"Idempotency-Key": KEY})
    assert status == 201 and "Idempotent-Replayed" not in headers
    payments = [in_flight, body["data"]["id"]]
    assert wait_for(lambda: all(status_of(api, payment_id) == "COMPLETED" for payment_id in payments), timeout=30)

    assert wait_for(lambda: "Worker #1: Redis is back" in worker.output())
    assert worker.output().count(f"Worker #1: Redis is unavailable ({cause}: ") == 1
    assert api_process.output().count(f"API: Redis is unavailable ({cause}: ") == 1
    assert "Traceback" not in worker.output() + api_process.output()


def test_a_redis_still_loading_its_data_is_a_503_saying_so_and_payments_resume_once_it_has(
        launch, own_servers, store):
    api, api_process = start_api(launch)
    worker = launch("paypoc_worker.py")
    done = http("POST", f"{api}/payments", {**BODY, "user_id": "earlier"})[2]["data"]["id"]
    assert wait_for(lambda: status_of(api, done) == "COMPLETED")
    # Enough data to take seconds to load: the append-only file rewritten to a snapshot, which
    # Redis's key-load-delay (microseconds a key, a setting of its own tests) slows down.
    with store.pipeline(transaction=False) as pipe:
        for number in range(20_000):
            pipe.set(f"ballast:{number}", "x")
        pipe.execute()
    store.bgrewriteaof()
    assert wait_for(lambda: store.info("persistence")["aof_rewrite_in_progress"] == 0
                    and store.info("persistence")["aof_rewrite_scheduled"] == 0)
    redis_server = own_servers["redis"]
    redis_server.stop()
    redis_server.command += ["--key-load-delay", "300", "--loading-process-events-interval-bytes", "1024"]
    restart = threading.Thread(target=redis_server.start, kwargs={"timeout": 60})
    restart.start()

    def loading():
        try:
            open_redis(f"redis://127.0.0.1:{redis_server.port}/0").ping()
        except redis_py.BusyLoadingError:
            return True
        except redis_py.ConnectionError:
            pass  # not listening yet
        return False

    assert wait_for(loading)
    cause = "it is loading its data"
    (status, headers, body), seconds = timed(lambda: http("POST", f"{api}/payments", BODY, {"Idempotency-Key": KEY}))
    assert (status, body, seconds < CONTRACT_SECONDS) == \
        (503, {"error": f"payment store unavailable: {cause}. {NOTHING_STORED}"}, True)
    (status, _, body), seconds = timed(lambda: http("GET", f"{api}/payments/{done}"))
    assert (status, body, seconds < CONTRACT_SECONDS) == \
        (503, {"error": f"payment store unavailable: {cause}; try again shortly"}, True)
    (status, _, body), seconds = timed(lambda: http("GET", f"{api}/ready"))
    assert (status, body["redis"], seconds < CONTRACT_SECONDS) == (503, "down", True)
    restart.join(60)

    status, headers, body = http("POST", f"{api}/payments", BODY, {"Idempotency-Key": KEY})
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert wait_for(lambda: status_of(api, body["data"]["id"]) == "COMPLETED", timeout=30)
    assert api_process.output().count(f"API: Redis is unavailable ({cause}: ") == 1
    assert "Traceback" not in worker.output() + api_process.output()


@pytest.mark.parametrize("refusal, cause", [("draining", "beanstalkd is draining and takes no new jobs"),
                                            ("job too big", "the job is larger than beanstalkd's max-job-size")])
def test_a_beanstalkd_that_refuses_the_job_leaves_the_payment_to_the_outbox_on_one_line_naming_why(
        refusal, cause, launch, own_servers, store):
    beanstalkd = own_servers["beanstalkd"]
    command = beanstalkd.command
    if refusal == "draining":
        os.kill(beanstalkd.process.pid, signal.SIGUSR1)  # beanstalkd's drain mode: no new jobs until it restarts
    else:
        beanstalkd.stop()
        beanstalkd.command = [*command, "-z", "10"]  # jobs of at most 10 bytes
        beanstalkd.start()
    api, api_process = start_api(launch)
    (status, _, body), seconds = timed(lambda: http("POST", f"{api}/payments", BODY))
    assert (status, seconds < CONTRACT_SECONDS) == (201, True)
    payment_id = body["data"]["id"]
    assert unfinished_score(store, payment_id) == 0  # due for the sweeper at once
    line = f"Payment {payment_id} stored but not queued (beanstalkd at 127.0.0.1:{beanstalkd.port}: {cause})"
    assert wait_for(lambda: line in api_process.output())
    assert "Traceback" not in api_process.output()

    # Drain mode ends only with a restart; a restart without -z takes jobs of any size again.
    beanstalkd.stop()
    beanstalkd.command = command
    beanstalkd.start()
    worker = launch("paypoc_worker.py")
    assert wait_for(lambda: status_of(api, payment_id) == "COMPLETED", timeout=30)
    assert wait_for(lambda: f"Re-queued unfinished payment {payment_id}" in worker.output())


def test_a_command_redis_calls_wrong_stays_a_500_with_its_traceback_in_the_log(make_client, store, caplog):
    client = make_client()
    payment_id = "00000000-0000-4000-8000-000000000000"
    store.set(keys.payment(payment_id), "not a hash")  # HGETALL on it: WRONGTYPE, a bug, not a refusal
    caplog.set_level(logging.ERROR, "paypoc.api")
    status, _, body = client.request("GET", f"/payments/{payment_id}")
    assert (status, body) == (500, {"error": "internal error"})
    assert any(record.exc_info and "WRONGTYPE" in str(record.exc_info[1]) for record in caplog.records)
