"""A dependency that is down or stalled gets a 503 within 2 s: never a hang, never a 500."""

import os
import signal
import time

import greenstalk
import pytest

from lib.devtools.local_cluster import LocalCluster
from lib.store import keys
from lib.store.redis_client import open_redis
from tests.conftest import WALKTHROUGH_BODY, unfinished_score

CONTRACT_SECONDS = 2.0


@pytest.fixture
def app_client(make_client, own_servers):
    return make_client(redis_url=f"redis://127.0.0.1:{own_servers['redis'].port}/0",
                       beanstalk_addr=f"127.0.0.1:{own_servers['beanstalkd'].port}")


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_redis_stopped_gives_503_on_every_route_that_needs_it(app_client, own_servers):
    own_servers["redis"].stop()
    some_id = "00000000-0000-4000-8000-000000000000"
    for method, path, body in [("POST", "/payments", WALKTHROUGH_BODY), ("GET", f"/payments/{some_id}", None)]:
        (status, headers, answer), seconds = timed(lambda: app_client.request(method, path, body))
        assert status == 503 and "unavailable" in answer["error"] and seconds < CONTRACT_SECONDS
        assert headers["Retry-After"] == "1"
        assert method == "GET" or headers["RateLimit-Policy"] == '"default";q=5;w=60'  # every POST answer
    assert app_client.request("GET", "/health")[0] == 200


def test_ready_names_the_dependency_that_is_down(app_client, own_servers):
    own_servers["beanstalkd"].stop()
    assert app_client.request("GET", "/ready")[::2] == \
        (503, {"status": "UNAVAILABLE", "redis": "up", "beanstalkd": "down"})
    own_servers["redis"].stop()
    assert app_client.request("GET", "/ready")[2]["redis"] == "down"


def test_beanstalkd_stopped_still_accepts_the_payment_and_leaves_it_to_the_sweeper(app_client, own_servers):
    assert app_client.post_payment(WALKTHROUGH_BODY)[0] == 201  # a connection is open and then lost
    own_servers["beanstalkd"].stop()
    (status, _, body), seconds = timed(lambda: app_client.post_payment(WALKTHROUGH_BODY))
    assert status == 201 and seconds < CONTRACT_SECONDS
    redis = open_redis(f"redis://127.0.0.1:{own_servers['redis'].port}/0")
    assert redis.hget(keys.payment(body['data']['id']), "status") == "PENDING"
    assert unfinished_score(redis, body["data"]["id"]) == 0  # due for the sweeper at once


def test_api_reconnects_once_beanstalkd_is_back(app_client, own_servers, env):
    own_servers["beanstalkd"].stop()
    app_client.post_payment(WALKTHROUGH_BODY)
    own_servers["beanstalkd"].start()
    app_client.post_payment(WALKTHROUGH_BODY)
    with greenstalk.Client(("127.0.0.1", own_servers["beanstalkd"].port), use=env["BEANSTALK_TUBE"]) as peek:
        assert peek.stats_tube(peek.using())["current-jobs-ready"] == 1  # the second one was queued


@pytest.mark.parametrize("restarted", ["redis", "beanstalkd"])
def test_after_a_dependency_restarts_no_request_fails_on_a_connection_it_closed(app_client, own_servers, restarted):
    created = app_client.post_payment(WALKTHROUGH_BODY)[2]["data"]  # connections are open before the restart
    assert app_client.request("GET", "/queue")[0] == 200
    own_servers[restarted].stop()
    own_servers[restarted].start()
    assert app_client.request("GET", "/ready")[::2] == (200, {"status": "OK", "redis": "up", "beanstalkd": "up"})
    assert app_client.request("GET", "/queue")[0] == 200
    assert app_client.request("GET", f"/payments/{created['id']}")[2] == created  # Redis keeps its append-only file
    assert app_client.post_payment({**WALKTHROUGH_BODY, "amount": 7})[0] == 201


@pytest.mark.parametrize("frozen", ["redis", "beanstalkd"])
def test_a_stalled_dependency_costs_a_timeout_not_a_hang(app_client, own_servers, frozen):
    assert app_client.post_payment(WALKTHROUGH_BODY)[0] == 201  # connections are open before the freeze
    os.kill(own_servers[frozen].process.pid, signal.SIGSTOP)
    (status, _, body), seconds = timed(lambda: app_client.post_payment(WALKTHROUGH_BODY))
    # Redis frozen: 503. beanstalkd frozen: accepted into Redis for the sweeper (the outbox).
    assert status == (503 if frozen == "redis" else 201) and seconds < CONTRACT_SECONDS
    ready, seconds = timed(lambda: app_client.request("GET", "/ready"))
    assert ready[0] == 503 and ready[2][frozen] == "down" and seconds < CONTRACT_SECONDS
    os.kill(own_servers[frozen].process.pid, signal.SIGCONT)
    # Thawed, it serves again at once: the connection that timed out was dropped, not reused.
    assert app_client.request("GET", "/ready")[0] == 200
    assert app_client.post_payment(WALKTHROUGH_BODY)[0] == 201


def test_ready_answers_within_2_s_with_both_dependencies_stalled(app_client, own_servers):
    assert app_client.request("GET", "/ready")[0] == 200  # connections are open before the freeze
    for server in own_servers.values():
        os.kill(server.process.pid, signal.SIGSTOP)  # the fixture thaws them
    (status, _, body), seconds = timed(lambda: app_client.request("GET", "/ready"))
    assert (status, body["redis"], body["beanstalkd"]) == (503, "down", "down") and seconds < CONTRACT_SECONDS


def test_a_whole_redis_cluster_gone_after_start_up_gives_503_not_500(make_client, tmp_path):
    # A cluster client that loses a node asks the others for the layout; when none answers,
    # redis-py raises its own RedisClusterException, not the ConnectionError underneath.
    cluster = LocalCluster(tmp_path, masters=3).start()
    try:
        client = make_client(redis_url=cluster.url, redis_cluster="yes")
        assert client.post_payment(WALKTHROUGH_BODY)[0] == 201  # the client knows the layout now
    finally:
        cluster.stop()
    some_id = "00000000-0000-4000-8000-000000000000"
    for method, path, body in [("POST", "/payments", WALKTHROUGH_BODY), ("GET", f"/payments/{some_id}", None)]:
        (status, headers, answer), seconds = timed(lambda: client.request(method, path, body))
        assert (status, headers["Retry-After"]) == (503, "1") and seconds < CONTRACT_SECONDS, answer
    (status, _, answer), seconds = timed(lambda: client.request("GET", "/ready"))
    assert (status, answer["redis"]) == (503, "down") and seconds < CONTRACT_SECONDS
