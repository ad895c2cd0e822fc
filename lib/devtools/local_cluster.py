"""A Redis Cluster of local redis-server processes (for `make run-cluster`, the tests and the bench)."""

import os
import socket
import subprocess
import time

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
    """masters × (1 + replicas) redis-server nodes joined by `redis-cli --cluster create`."""

    def __init__(self, data_dir: str, masters: int = 3, replicas: int = 0, log_dir: str | None = None):
        self.data_dir, self.masters, self.replicas = str(data_dir), masters, replicas
        self.nodes: list[LocalServer] = []
        for _ in range(masters * (1 + replicas)):
            port = free_cluster_port()
            node_dir = os.path.join(self.data_dir, str(port))
            os.makedirs(node_dir, exist_ok=True)
            log_path = os.path.join(log_dir or node_dir, f"redis-{port}.log")
            self.nodes.append(local_redis(port, node_dir, log_path, "", "--cluster-enabled", "yes",
                                          "--cluster-config-file", os.path.join(node_dir, "nodes.conf"),
                                          "--cluster-node-timeout", str(NODE_TIMEOUT_MS)))

    @property
    def url(self) -> str:
        """A REDIS_URL naming one of the nodes (any would do: the client learns the others)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, announce: list[int] | None = None, timeout: float = 30.0) -> "LocalCluster":
        """Start every node, join them into a cluster, and wait until it serves every slot. With
        announce, node i tells clients to reach it on port announce[i] (a proxy in front of it)."""
        for number, node in enumerate(self.nodes):
            if announce:
                node.command += ["--cluster-announce-port", str(announce[number]),
                                 "--cluster-announce-bus-port", str(node.port + BUS_OFFSET)]
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run([require("redis-cli"), "--cluster", "create", *addresses, "--cluster-replicas",
                        str(self.replicas), "--cluster-yes"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + timeout
        while not all(self.ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster in {self.data_dir} did not become ready")
            time.sleep(0.1)
        return self

    @staticmethod
    def ok(node: LocalServer) -> bool:
        """True when the node says the cluster serves every slot and, for a replica, that it has
        copied its master's data and follows it."""
        def ask(*command):
            return subprocess.run([require("redis-cli"), "-p", str(node.port), *command], capture_output=True,
                                  text=True, timeout=10).stdout
        replication = ask("info", "replication")
        return "cluster_state:ok" in ask("cluster", "info") and \
            ("role:master" in replication or "master_link_status:up" in replication)

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()
