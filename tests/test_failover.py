"""Failover on a Redis Cluster with replicas: a master is killed and its replica takes over. Meanwhile
the API answers 503 with Retry-After, never 500; after it, every payment the cluster acknowledged on
a replica (REDIS_WAIT_REPLICAS=1) is still there and finishes, charged (the processor charges a payment
once, whatever asks it)."""

import time

import pytest

from lib.devtools.local_cluster import LocalCluster
from lib.devtools.processes import http, wait_for
from lib.store import keys
from lib.store.redis_client import open_redis


@pytest.fixture
def cluster(tmp_path):
    """Three masters and three replicas of this test's own."""
    cluster = LocalCluster(tmp_path, masters=3, replicas=1).start()
    yield cluster
    cluster.stop()


def status(api, payment_id):
    """The payment's status, or the HTTP status when the API could not answer."""
    code, _, body = http("GET", f"{api}/payments/{payment_id}")
    return body["status"] if code == 200 else code


def test_a_master_killed_its_replica_takes_over_and_every_acknowledged_payment_finishes(cluster, start_api,
                                                                                          launch):
    settings = {"redis_url": cluster.url, "redis_cluster": "yes", "rate_limit": 1000}
    # Payments are taken by an API that answers 201 only once a replica has them too; the gap is
    # watched through one that does not wait (the new master has no replica left to wait for).
    api_waiting, api = start_api(redis_wait_replicas=1, **settings), start_api(**settings)
    launch("paypoc_worker.py", max_workers=4, processing_delay=0.2, **settings)
    redis = open_redis(cluster.url, cluster=True)
    users = [f"user-{n}" for n in range(30)]
    accepted = []
    for user in users:
        code, _, body = http("POST", f"{api_waiting}/payments", {"user_id": user, "amount": 10, "currency": "EUR"},
                             headers={"Idempotency-Key": f"{user}-1"})
        assert code == 201, body  # on the master and on its replica
        accepted.append(body["data"]["id"])

    # Kill, as a crash would, the master of a user's shard; not the node REDIS_URL names, which a
    # process needs when it starts, to learn the others.
    def master_of(user):
        return redis.client().get_node_from_key(keys.rate_limit(user)).port

    user = next(user for user in users if master_of(user) != cluster.nodes[0].port)
    victim = next(node for node in cluster.nodes if node.port == master_of(user))
    victim.process.kill()
    started, answers = time.monotonic(), []
    while time.monotonic() - started < 30:
        code, headers, body = http("POST", f"{api}/payments", {"user_id": user, "amount": 1, "currency": "EUR"},
                                   headers={"Idempotency-Key": f"during-{len(answers)}"})
        answers.append((code, headers.get("Retry-After")))
        if code == 201:
            break
        time.sleep(0.1)
    gap = time.monotonic() - started
    assert answers[-1][0] == 201, answers  # the replica took over
    assert all(code == 503 and retry_after for code, retry_after in answers[:-1]), answers  # never a 500
    assert len(answers) > 1, "the first request after the kill should have met the gap"

    # Every payment acknowledged before the failover, and the one made after it, finishes, charged once.
    assert wait_for(lambda: all(status(api, payment_id) == "COMPLETED" for payment_id in accepted), timeout=60), \
        {payment_id: status(api, payment_id) for payment_id in accepted}
    after = open_redis(cluster.url, cluster=True)  # a client that learns the cluster as it is now
    assert all(after.hexists(keys.charges(keys.shard_of_payment(payment_id)), payment_id) for payment_id in accepted)
    print(f"failover gap: {gap:.1f} s, {len(answers) - 1} requests answered 503")
