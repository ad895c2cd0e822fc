"""`make dev-cluster` on a real Docker engine, in a fresh clone: the stack on a Redis Cluster of three
masters and three replicas and two beanstalkd; its healthchecks, the walkthrough, the rate limit, a
master stopped and its replica taking over, and `make down` then `make dev-cluster` finding the same
cluster. Skipped, with the reason, where no engine answers."""

import itertools
import time

import pytest
from redis.crc import key_slot

from lib.devtools.processes import http, wait_for
from lib.store import keys
from tests.docker_helpers import ComposeStack, engine_problem
from tests.quick_start import quick_start_steps, run

API = "http://localhost:8000"
NODES = [f"cluster-redis-{n}" for n in range(1, 7)]
BEANSTALKDS = ["cluster-beanstalkd-1", "cluster-beanstalkd-2"]
SERVICES = {*NODES, *BEANSTALKDS, "cluster-proxy", "cluster-api", "cluster-worker"}  # those that keep running
HEALTHCHECKED = {*NODES, *BEANSTALKDS, "cluster-proxy", "cluster-api"}

PROBLEM = engine_problem()
if PROBLEM:
    pytest.skip(f"Compose stack not run: {PROBLEM}", allow_module_level=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack `make dev-cluster` starts in a clone of HEAD; everything it made is removed afterwards."""
    stack = ComposeStack(tmp_path_factory.mktemp("compose-cluster") / "paypoc", profile="cluster")
    stack.clone()
    try:
        stack.make_dev("dev-cluster")
        yield stack
    finally:
        stack.remove()


class Node:
    """One line of CLUSTER NODES: a node's id, address, role, its master's id (for a replica) and slots."""

    def __init__(self, line):
        fields = line.split()
        self.id, self.address, flags, self.master_id = fields[0], fields[1].split("@")[0], fields[2], fields[3]
        self.flags = flags.split(",")
        self.role = "master" if "master" in self.flags else "replica"
        self.slots = [tuple(int(end) for end in (text.split("-") * 2)[:2]) for text in fields[8:]]

    def serves(self, slot):
        return any(first <= slot <= last for first, last in self.slots)


def cluster_nodes(stack, asked="cluster-redis-1"):
    """The cluster as the node `asked` sees it: a Node for each node, failed ones included."""
    reply = stack.compose("exec", "-T", asked, "redis-cli", "cluster", "nodes")
    return [Node(line) for line in reply.splitlines() if line.strip()]


def cluster_info(stack, node):
    reply = stack.compose("exec", "-T", node, "redis-cli", "cluster", "info")
    return dict(line.strip().split(":", 1) for line in reply.splitlines() if ":" in line)


def service_at(stack, address):
    """The compose service whose container has this IP address."""
    ip = address.rsplit(":", 1)[0]
    return next(service for service in NODES for container in stack.inspect(service)
                if any(network["IPAddress"] == ip for network in container["NetworkSettings"]["Networks"].values()))


def users_of_shard(shard):
    """New user ids, all of whose keys and payments are in this shard."""
    return (user for user in (f"user-{shard}-{n}" for n in itertools.count()) if keys.shard_of_user(user) == shard)


def post(user_id):
    return http("POST", f"{API}/payments", {"user_id": user_id, "amount": 100, "currency": "XAF"}, timeout=5)


def status_of(payment_id):
    return http("GET", f"{API}/payments/{payment_id}")[2]["status"]


def test_make_dev_cluster_returns_once_every_healthcheck_passes_and_the_cluster_serves_every_slot(stack):
    assert "API on http://localhost:8000, on a Redis Cluster of three masters and three replicas" in \
        stack.make_dev_output
    for service in HEALTHCHECKED:  # `make dev-cluster` waited for them: no polling here
        assert stack.health(service) == ["healthy"], service
    assert {service: [c["State"]["Status"] for c in stack.inspect(service)] for service in SERVICES} == \
        {service: ["running"] for service in SERVICES}
    created = stack.inspect("cluster-create")[0]["State"]
    assert (created["Status"], created["ExitCode"]) == ("exited", 0)
    for service in ("redis", "beanstalkd", "api", "worker", "beanstalkd-ui"):  # the other stack's: none started
        assert stack.containers(service) == [], service
    nodes = cluster_nodes(stack)
    masters = [node for node in nodes if node.role == "master"]
    assert len(masters) == 3 and sum(last - first + 1 for node in masters for first, last in node.slots) == 16384
    assert sorted(node.master_id for node in nodes if node.role == "replica") == sorted(node.id for node in masters)
    assert all(cluster_info(stack, node)["cluster_state"] == "ok" for node in NODES)


def test_the_walkthrough_payment_is_completed(stack):
    walkthrough = {"user_Id": "user_123", "amount": 1500, "currency": "XAF"}  # the walkthrough's body, verbatim
    status, headers, body = http("POST", f"{API}/payments", walkthrough)
    assert status == 201 and body["data"]["status"] == "PENDING"
    payment_id = body["data"]["id"]
    assert headers["Location"] == f"/payments/{payment_id}"
    assert wait_for(lambda: status_of(payment_id) == "COMPLETED", timeout=30)


def test_the_readmes_rate_limit_loop_gets_five_201s_then_five_429s(stack):
    _, _, (loop, _) = quick_start_steps()
    assert run(loop).split() == ["201"] * 5 + ["429"] * 5


def test_queue_shows_both_beanstalkd_and_the_worker(stack):
    _, _, queue = http("GET", f"{API}/queue")
    assert set(queue["servers"]) == {f"{name}:11300" for name in BEANSTALKDS}
    assert len(queue["workers"]) == 1


def test_the_redis_password_is_on_no_command_line_and_every_node_requires_it(stack):
    password = stack.redis_password()
    processes = stack.compose("top")  # the `ps` of every running container, with whole command lines
    assert processes.count("redis-server") >= 6 and password not in processes
    for node in NODES:
        container = stack.inspect(node)[0]
        assert password not in " ".join([container["Path"], *container["Args"]])
        refused = stack.run("docker", "compose", "exec", "-T", "-e", "REDISCLI_AUTH=", node, "redis-cli", "ping")
        assert "NOAUTH" in refused.stdout, node


def test_a_stopped_master_is_replaced_by_its_replica_503_with_retry_after_meanwhile_and_never_500(stack):
    master = next(node for node in cluster_nodes(stack) if node.role == "master")
    replica = next(node for node in cluster_nodes(stack) if node.master_id == master.id)
    stopped, survivor = service_at(stack, master.address), service_at(stack, replica.address)
    shard = next(shard for shard in range(keys.SHARDS) if master.serves(key_slot(keys.unfinished(shard).encode())))
    users = users_of_shard(shard)
    status, _, before = post(next(users))
    assert status == 201
    assert wait_for(lambda: status_of(before["data"]["id"]) == "COMPLETED", timeout=30)

    stack.compose("stop", stopped)  # SIGTERM; the master is gone until started again
    answers, accepted, started = [], [], time.monotonic()
    while not (answers and 503 in answers and answers[-5:] == [201] * 5):
        assert time.monotonic() - started < 90, f"no failover in 90 s: {answers}"
        status, headers, body = post(next(users))
        answers.append(status)
        if status == 503:
            assert headers["Retry-After"] and "error" in body, body
        elif status == 201:
            accepted.append(body["data"]["id"])
        assert status in (201, 503), (status, body)
        time.sleep(0.2)

    promoted = next(node for node in cluster_nodes(stack, survivor) if node.id == replica.id)
    assert promoted.role == "master" and promoted.slots == master.slots
    assert status_of(before["data"]["id"]) == "COMPLETED"  # written before the failover: still there
    assert wait_for(lambda: all(status_of(payment_id) == "COMPLETED" for payment_id in accepted), timeout=120)

    stack.compose("start", stopped)  # the old master comes back as its replica's replica
    assert wait_for(lambda: next(node for node in cluster_nodes(stack, survivor) if node.id == master.id).role ==
                    "replica" and cluster_info(stack, stopped)["cluster_state"] == "ok", timeout=60)


def test_make_down_then_make_dev_cluster_finds_the_same_cluster_and_its_payments(stack):
    status, _, body = post("after-restart")
    assert status == 201
    assert wait_for(lambda: status_of(body["data"]["id"]) == "COMPLETED", timeout=30)
    ids = {node.id for node in cluster_nodes(stack)}
    names = {container["Name"].lstrip("/") for service in SERVICES for container in stack.inspect(service)}

    since = time.time()
    down = stack.run("make", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    stops = stack.stops(since, time.time())
    assert set(stops) == names
    for name, stop in stops.items():
        assert stop.signals == ["15"] and stop.seconds < 10, f"{name}: {stop}"
    assert stack.compose("ps", "--all", "--quiet").split() == []

    # Docker may give the containers new addresses; cluster-create introduces the nodes to each other again.
    stack.make_dev("dev-cluster")
    assert {node.id for node in cluster_nodes(stack)} == ids
    assert all(cluster_info(stack, node)["cluster_state"] == "ok" for node in NODES)
    assert status_of(body["data"]["id"]) == "COMPLETED"
    assert post("after-restart")[0] == 201
