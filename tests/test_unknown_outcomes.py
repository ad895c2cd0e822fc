"""A keyed POST whose Redis command has an unknown outcome (answered late, cut after it was sent,
the API killed mid-request), retried with the same key and body, ends in exactly one payment."""

import threading
import time

import pytest

from lib.devtools.local_servers import free_port
from lib.devtools.processes import http, wait_for
from lib.runtime.config import DEPENDENCY_TIMEOUT
from lib.store import keys
from tests.conftest import counter, on_both_topologies
from tests.faults import FaultProxy

BODY = {"user_id": "u", "amount": "12.5", "currency": "EUR"}
KEY = "order-7"


class Faulty:
    """Redis behind FaultProxy: one in front of the single Redis, or the cluster's own (one per master)."""

    def __init__(self, topology, request):
        if topology == "single":
            self.proxies = [FaultProxy(request.getfixturevalue("redis_server").port)]
            self.url, self.cluster = f"redis://127.0.0.1:{self.proxies[0].port}/0", False
        else:
            self.cluster_servers = request.getfixturevalue("redis_cluster")
            self.proxies, self.url, self.cluster = [], self.cluster_servers.url, True

    def proxy_for(self, user):
        """The proxy that the user's commands go through."""
        return self.cluster_servers.proxy_for(keys.rate_limit(user)) if self.cluster else self.proxies[0]

    def users_with_the_proxy_of(self, first, prefix):
        """Users whose commands go through the same proxy as first's, named prefix-1, prefix-2..."""
        names = (f"{prefix}-{n}" for n in range(1, 10_000))
        return (name for name in names if self.proxy_for(name) is self.proxy_for(first))

    def close(self):
        for proxy in self.proxies:
            proxy.close()


@pytest.fixture
def faulty(topology, request):
    faulty = Faulty(topology, request)
    yield faulty
    faulty.close()


def keyed_post(client, user):
    return client.post_payment({**BODY, "user_id": user}, headers={"HTTP_IDEMPOTENCY_KEY": KEY})


def payments_of(redis, user):
    return redis.zrange(keys.user_payments(user), 0, -1)


def retry_until_created(post, timeout=5.0):
    """Retry as a client told Retry-After: 1 would; the first 201, and how long it took."""
    started = time.monotonic()
    while (answer := post())[0] != 201 and time.monotonic() - started < timeout:
        time.sleep(0.1)
    return answer, time.monotonic() - started


@on_both_topologies
@pytest.mark.parametrize("mode", ["late", "cut"])
def test_each_command_of_a_keyed_post_can_fail_after_redis_ran_it_and_the_retry_finds_one_payment(
        make_client, redis, faulty, mode):
    def fresh_app():
        redis.script_flush()  # so every run sends what a first POST does: NOSCRIPT, SCRIPT LOAD
        return make_client(redis_url=faulty.url, redis_cluster=faulty.cluster)

    counting, proxy = fresh_app(), faulty.proxy_for("counting")
    before = proxy.commands
    assert keyed_post(counting, "counting")[0] == 201
    commands = proxy.commands - before  # connection set-up, EVALSHA, SCRIPT LOAD, EVALSHA
    assert commands >= 4
    users = faulty.users_with_the_proxy_of("counting", mode)  # so each POST sends what the counted one did
    for n in range(1, commands + 1):
        client, user = fresh_app(), next(users)
        proxy.arm(mode, nth=n, hold=DEPENDENCY_TIMEOUT + 1)
        status, headers, body = keyed_post(client, user)
        assert proxy.fired.is_set()
        assert status == 503, (n, status, body)  # the answer never came in time
        assert headers["Retry-After"] == "1" and "same Idempotency-Key" in body["error"]
        (status, headers, body), seconds = retry_until_created(lambda: keyed_post(client, user))
        assert status == 201 and seconds < 3, (n, status, body)
        assert payments_of(redis, user) == [body["data"]["id"]], n


@pytest.fixture
def api_process(launch):
    """api_process(redis_url, cluster): a running API; returns (its base URL, its Process)."""

    def start(redis_url, cluster):
        port = free_port()
        process = launch("paypoc.py", port=port, redis_url=redis_url, redis_cluster="yes" if cluster else "no")
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: "listening" in process.output())
        return base, process

    return start


def post_in_background(url, user):
    """Send a keyed POST from a thread, as a client whose API then dies would."""
    thread = threading.Thread(target=lambda: _swallow(lambda: http("POST", url, {**BODY, "user_id": user},
                                                                    headers={"Idempotency-Key": KEY})))
    thread.start()
    return thread


def _swallow(call):
    try:
        call()
    except OSError:
        pass  # the API was killed: no answer


@on_both_topologies
@pytest.mark.parametrize("fault", ["late", "stall"])
def test_a_keyed_post_whose_api_is_killed_mid_request_ends_in_one_payment(api_process, redis, servers, faulty, fault):
    """late: Redis ran the admission, its answer is held, the API dies. stall: the admission is
    still on its way to Redis when the API dies, and arrives after the retry has made the payment."""
    user, proxy = f"killed-{fault}", faulty.proxy_for(f"killed-{fault}")
    api, process = api_process(faulty.url, faulty.cluster)
    assert http("POST", f"{api}/payments", BODY)[0] == 201  # connected, and the script loaded
    proxy.arm(fault, containing=b"EVALSHA", hold=60)
    request = post_in_background(f"{api}/payments", user)
    assert proxy.fired.wait(10)
    if fault == "late":
        assert wait_for(lambda: len(payments_of(redis, user)) == 1)  # Redis ran it; the answer is held
    process.kill_all()
    request.join(10)
    retry_api, _ = api_process(*servers[:2])  # a new API process (on a cluster, through proxies that let it pass)
    (status, headers, body), _ = retry_until_created(
        lambda: http("POST", f"{retry_api}/payments", {**BODY, "user_id": user}, headers={"Idempotency-Key": KEY}))
    assert status == 201 and payments_of(redis, user) == [body["data"]["id"]]
    if fault == "stall":
        assert "Idempotent-Replayed" not in headers  # the retry made the payment
        proxy.release()  # the dead API's admission reaches Redis now, and finds the key taken
        assert wait_for(lambda: counter(redis, "idempotent_replays") == 1)
        assert payments_of(redis, user) == [body["data"]["id"]]
    else:
        assert headers["Idempotent-Replayed"] == "true"
