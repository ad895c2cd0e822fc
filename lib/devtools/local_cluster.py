"""A Redis Cluster of local redis-server processes (for `make run-cluster`, the tests and the bench)."""

import os
import socket
import subprocess
import time
from collections.abc import Sequence

from lib.devtools.local_servers import LocalServer, free_port, local_redis, require

BUS_OFFSET = 10000  # a cluster node also listens on its port + 10000, for the other nodes
NODE_TIMEOUT_MS = 1000  # how long a master may be silent before its replica takes over (Redis's default: 15 s)


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + BUS_OFFSET <= 65535 and _free(port + BUS_OFFSET):
            return port


def _free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class LocalCluster:
    """masters × (1 + replicas) redis-server nodes joined by `redis-cli --cluster create`.

    Each node keeps its data and its nodes.conf (the other nodes by address, and the slots each
    serves) in data_dir/<port>. Started again on the same ports and data_dir, the nodes find
    each other from nodes.conf and serve the cluster made before: start() creates one only when
    no node belongs to a cluster yet. With a password, every node requires it and a replica
    presents it to its master; redis-cli reads it from its environment, not its command line.
    """

    def __init__(self, data_dir: str, masters: int = 3, replicas: int = 0, log_dir: str | None = None,
                 ports: Sequence[int] | None = None, password: str = ""):
        self.data_dir, self.masters, self.replicas, self.password = str(data_dir), masters, replicas, password
        self.created = False  # set by start(): True when it made a new cluster, False when it found one
        count = masters * (1 + replicas)
        ports = list(ports) if ports else [free_cluster_port() for _ in range(count)]
        if len(ports) != count:
            raise ValueError(f"{count} nodes need {count} ports, not {len(ports)}")
        self.nodes: list[LocalServer] = []
        for port in ports:
            node_dir = os.path.join(self.data_dir, str(port))
            log_path = os.path.join(log_dir or node_dir, f"redis-{port}.log")
            self.nodes.append(local_redis(port, node_dir, log_path, password, "--cluster-enabled", "yes",
                                          "--cluster-config-file", os.path.join(node_dir, "nodes.conf"),
                                          "--cluster-node-timeout", str(NODE_TIMEOUT_MS)))

    @property
    def url(self) -> str:
        """A REDIS_URL naming one of the nodes (any would do: the client learns the others)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, announce: list[int] | None = None, timeout: float = 30.0) -> "LocalCluster":
        """Start every node, join them into a cluster unless they form one already, and wait until
        it serves every slot. With announce, node i tells clients to reach it on port announce[i]
        (a proxy in front of it)."""
        for number, node in enumerate(self.nodes):
            os.makedirs(os.path.join(self.data_dir, str(node.port)), exist_ok=True)
            if announce:
                node.command += ["--cluster-announce-port", str(announce[number]),
                                 "--cluster-announce-bus-port", str(node.port + BUS_OFFSET)]
            node.start()
        in_a_cluster = [self.info(node).get("cluster_slots_assigned", "0") != "0" for node in self.nodes]
        if not any(in_a_cluster):
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            created = self._cli("--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas),
                                "--cluster-yes", timeout=60)
            if created.returncode != 0:
                self.stop()
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
            self.created = True
        elif not all(in_a_cluster):
            self.stop()
            raise RuntimeError(f"some nodes in {self.data_dir} belong to a cluster and some do not: "
                               f"remove {self.data_dir} to start a new cluster")
        deadline = time.monotonic() + timeout
        while not all(self.ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the cluster in {self.data_dir} did not become ready")
            time.sleep(0.1)
        return self

    def _cli(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        env = {**os.environ, "REDISCLI_AUTH": self.password} if self.password else None
        return subprocess.run([require("redis-cli"), *args], capture_output=True, text=True, timeout=timeout, env=env)

    def info(self, node: LocalServer, section: str = "cluster") -> dict[str, str]:
        """The node's CLUSTER INFO (cluster_state, cluster_slots_assigned...), or with section
        "replication" its INFO replication; empty if it does not answer."""
        command = ("cluster", "info") if section == "cluster" else ("info", section)
        reply = self._cli("-p", str(node.port), *command).stdout
        return dict(line.split(":", 1) for line in reply.split() if ":" in line)

    def ok(self, node: LocalServer) -> bool:
        """True when the node says the cluster serves every slot and, for a replica, that it has
        copied its master's data and follows it."""
        replication = self.info(node, "replication")
        return self.info(node).get("cluster_state") == "ok" and \
            (replication.get("role") == "master" or replication.get("master_link_status") == "up")

    def stop(self) -> None:
        """Stop every node, all at once: one by one, a master's replica could take over while it waits."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            node.stop()
