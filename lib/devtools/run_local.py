"""`make run` and `make run-cluster`: Redis (one, or a cluster), beanstalkd, the API and the worker
as local processes, stopped together.

python -m lib.devtools.run_local [--cluster] [--data-dir DIR] [--redis-port N] [--beanstalk-port N]
(the ports are the first of each kind; the tests choose free ones)
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
from typing import NamedTuple
from urllib.parse import quote

from lib.devtools.local_cluster import BUS_OFFSET, LocalCluster
from lib.devtools.local_servers import local_beanstalkd, local_redis, port_taken
from lib.runtime.config import load_config_or_exit

REDIS_PORT, BEANSTALK_PORT = 6379, 11300
# The cluster's six nodes: fixed ports, because each node's nodes.conf remembers the others by
# address, so the next make run-cluster finds the same cluster; apart from 6379, so that make run
# and make run-cluster each keep their own Redis.
CLUSTER_PORT, CLUSTER_MASTERS, CLUSTER_REPLICAS = 7000, 3, 1
# The same commands the api and worker containers run (see docker-compose.yml).
APP_COMMANDS = {"api": ["python", "paypoc.py"], "worker": ["python", "paypoc_worker.py"]}


class Stack(NamedTuple):
    """The servers one of the two commands starts, the ports they need, and how the API and worker reach them."""

    command: str  # what the user typed: make run, make run-cluster
    ports: list[tuple[str, int]]  # (what listens there, port on 127.0.0.1)
    env: dict[str, str]  # REDIS_URL, REDIS_CLUSTER and BEANSTALK_ADDR for the API and the worker
    servers: list  # LocalServer or LocalCluster: each has start() and stop()
    dirs: list[str]  # where the servers keep their data, made once the ports are found free


def single_stack(data_dir: str, password: str, redis_port: int, beanstalk_port: int) -> Stack:
    """make run: one Redis, its append-only file in DIR/redis, and one beanstalkd, its binlog in DIR/beanstalkd."""
    servers = [local_redis(redis_port, os.path.abspath(f"{data_dir}/redis"), f"{data_dir}/redis.log", password),
               local_beanstalkd(beanstalk_port, f"{data_dir}/beanstalkd.log", f"{data_dir}/beanstalkd")]
    env = {"REDIS_URL": f"redis://{credentials(password)}localhost:{redis_port}/0", "REDIS_CLUSTER": "no",
           "BEANSTALK_ADDR": f"localhost:{beanstalk_port}"}
    return Stack("make run", [("Redis", redis_port), ("beanstalkd", beanstalk_port)], env, servers,
                 [f"{data_dir}/redis", f"{data_dir}/beanstalkd"])


def cluster_stack(data_dir: str, password: str, first_node_port: int, beanstalk_port: int) -> Stack:
    """make run-cluster: a Redis Cluster of three masters and three replicas in DIR/cluster, and two
    beanstalkd, their binlogs there too."""
    cluster_dir = os.path.abspath(f"{data_dir}/cluster")
    node_ports = range(first_node_port, first_node_port + CLUSTER_MASTERS * (1 + CLUSTER_REPLICAS))
    cluster = LocalCluster(cluster_dir, CLUSTER_MASTERS, CLUSTER_REPLICAS, ports=node_ports, password=password)
    beanstalk_ports = [beanstalk_port, beanstalk_port + 1]
    beanstalkds = [local_beanstalkd(port, f"{cluster_dir}/beanstalkd-{port}.log", f"{cluster_dir}/beanstalkd-{port}")
                   for port in beanstalk_ports]
    ports = [*(("Redis Cluster node", port) for port in node_ports),
             *(("its cluster bus", port + BUS_OFFSET) for port in node_ports),
             *(("beanstalkd", port) for port in beanstalk_ports)]
    # Any node would do: the client asks it for the others. 127.0.0.1, as the nodes name themselves.
    env = {"REDIS_URL": f"redis://{credentials(password)}127.0.0.1:{first_node_port}/0", "REDIS_CLUSTER": "yes",
           "BEANSTALK_ADDR": ",".join(f"localhost:{port}" for port in beanstalk_ports)}
    return Stack("make run-cluster", ports, env, [cluster, *beanstalkds],
                 [f"{cluster_dir}/beanstalkd-{port}" for port in beanstalk_ports])


def credentials(password: str) -> str:
    """The user-and-password part of a redis:// URL: ':secret@', or nothing."""
    return f":{quote(password, safe='')}@" if password else ""


def read_env_file(path: str, environ: dict) -> dict:
    """environ plus the KEY=value lines of path; a variable already set in environ wins."""
    merged = dict(environ)
    if os.path.exists(path):
        with open(path) as env_file:
            for line in env_file:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    name, value = line.split("=", 1)
                    merged.setdefault(name.strip(), value.strip())
    return merged


def taken_ports_advice(stack: Stack, host: str, api_port: int) -> str | None:
    """What to do when a port the stack needs is taken (make dev still up, another make run...),
    or None when every port is free."""
    wanted = [("the API", host, api_port)] + [(name, "127.0.0.1", port) for name, port in stack.ports]
    taken = [f"{port} ({name})" for name, address, port in wanted if port_taken(address, port)]
    if not taken:
        return None
    advice = [f"{stack.command} started nothing: already in use: port {', port '.join(taken)}.",
              "  If make dev or make dev-cluster is up, stop it with: make down "
              "(make run or make run-cluster: Ctrl-C in its terminal)."]
    if port_taken(host, api_port):
        advice.append(f"  Or run the API on another port: PORT={api_port + 1} {stack.command}")
    return "\n".join(advice)


def describe(server) -> str:
    """One line saying what a server is, where it listens and where it writes."""
    if isinstance(server, LocalCluster):
        return (f"a Redis Cluster of {server.masters} masters and {server.masters * server.replicas} replicas on "
                f"ports {server.nodes[0].port}-{server.nodes[-1].port} (data and logs: {server.data_dir})")
    return f"{server.kind} on port {server.port} (log: {server.log_path})"


def _relay(name, stream):
    """Copy a child's output to ours, each line prefixed with its name as docker compose does."""
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:<7}| {line.decode(errors='replace')}")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Start everything, wait for Ctrl-C (or SIGTERM, or any process dying), then stop everything."""
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", action="store_true", help="a Redis Cluster and two beanstalkd (make run-cluster)")
    parser.add_argument("--data-dir", default=".run")
    parser.add_argument("--redis-port", type=int, help=f"Redis's port, or the first node's ({REDIS_PORT}, {CLUSTER_PORT})")
    parser.add_argument("--beanstalk-port", type=int, default=BEANSTALK_PORT, help="the (first) beanstalkd's port")
    args = parser.parse_args(argv)
    env = read_env_file(".env", os.environ)
    # REDIS_PASSWORD (set by `make dev` in .env) protects this Redis too, as it does the container's.
    password = env.get("REDIS_PASSWORD", "")
    if args.cluster:
        stack = cluster_stack(args.data_dir, password, args.redis_port or CLUSTER_PORT, args.beanstalk_port)
    else:
        stack = single_stack(args.data_dir, password, args.redis_port or REDIS_PORT, args.beanstalk_port)
    env.update(stack.env, PYTHONUNBUFFERED="1")
    config = load_config_or_exit(env)  # a bad setting stops make run here, before anything starts
    if advice := taken_ports_advice(stack, config.host, config.port):
        print(advice, file=sys.stderr)
        return 1
    for directory in stack.dirs:
        os.makedirs(directory, exist_ok=True)
    finished = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: finished.set())
    signal.signal(signal.SIGINT, lambda *_: finished.set())
    apps = {}
    try:
        for server in stack.servers:
            print(f"starting {describe(server)}", flush=True)
            server.start()
            if isinstance(server, LocalCluster):
                print("  a new cluster, made with redis-cli --cluster create" if server.created else
                      "  the cluster made before, as each node's nodes.conf remembers it", flush=True)
        for name, command in APP_COMMANDS.items():
            # A session of its own: Ctrl-C reaches only this supervisor, which then stops each
            # process once, in order, so the worker finishes its jobs in hand.
            apps[name] = subprocess.Popen([sys.executable] + command[1:], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, start_new_session=True)
            threading.Thread(target=_relay, args=(name, apps[name].stdout), daemon=True).start()
        print(f"API and its page on http://localhost:{config.port} ({config.api_processes} processes of "
              f"{config.threads} threads), worker ({config.worker_processes} process(es) of {config.max_workers} "
              "thread(s)) - press Ctrl-C to stop everything", flush=True)
        while not finished.wait(0.5):
            dead = [name for name, process in apps.items() if process.poll() is not None]
            if dead:
                print(f"{', '.join(dead)} exited; stopping everything", flush=True)
                return 1
        return 0
    except RuntimeError as error:  # a server that did not start: say why, stop the rest
        print(f"{error} (is something else using the port?)", file=sys.stderr)
        return 1
    finally:
        for name, process in apps.items():
            if process.poll() is None:
                process.terminate()
        for process in apps.values():
            process.wait()
        for server in reversed(stack.servers):
            server.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
