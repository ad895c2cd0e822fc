"""`make run` and `make run-cluster`: they check their ports before starting anything, their servers'
start-up probes leave nothing in their logs, and make run-cluster finds the cluster it made before."""

import os
import random
import signal
import socket
import subprocess
import sys

import greenstalk
import pytest
import redis

from lib.devtools.local_cluster import BUS_OFFSET
from lib.devtools.local_servers import free_port, local_beanstalkd, port_taken
from lib.devtools.processes import ROOT, answers, http, wait_for


def test_make_run_with_the_api_port_taken_starts_nothing_and_says_what_to_do(tmp_path):
    with socket.socket() as holder:  # something already listening where the API would
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.Popen([sys.executable, "-m", "lib.devtools.run_local", "--data-dir", str(tmp_path / "run")],
                               cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port)})
        try:
            out, err = run.communicate(timeout=30)
        finally:
            if run.poll() is None:  # it went on to start everything: stop it the way Ctrl-C would
                run.send_signal(signal.SIGTERM)
                run.communicate(timeout=30)
    assert run.returncode == 1 and out == ""  # nothing started, so nothing said "starting ..."
    assert not (tmp_path / "run").exists()  # nor any folder made for data
    assert f"port {port} (the API)" in err and "make down" in err and f"PORT={port + 1} make run" in err


def test_the_start_up_probe_leaves_no_connection_reset_in_beanstalkds_log(tmp_path):
    server = local_beanstalkd(free_port(), tmp_path / "beanstalkd.log").start()
    try:
        # A round trip on a new connection: beanstalkd has dealt with the probe's connection by then.
        client = greenstalk.Client(("127.0.0.1", server.port))
        assert client.stats()["uptime"] >= 0
        client.close()
    finally:
        server.stop()
    assert (tmp_path / "beanstalkd.log").read_text() == ""


def free_ports(count, gap=0):
    """The first of count consecutive free ports, whose ports + gap are free too (a cluster's bus ports)."""
    while True:
        first = random.randint(20000, 30000)
        wanted = [port for port in range(first, first + count)] + [port + gap for port in range(first, first + count)]
        if not any(port_taken("127.0.0.1", port) for port in wanted):
            return first


def start_run_cluster(tmp_path, ports, env):
    """make run-cluster on the given ports, its output in a file; returns (process, output file) once
    the API answers."""
    output = tmp_path / f"run-cluster-{len(list(tmp_path.glob('run-cluster-*')))}.log"
    with open(output, "w") as log:
        run = subprocess.Popen([sys.executable, "-m", "lib.devtools.run_local", "--cluster", "--data-dir",
                                str(tmp_path / "run"), "--redis-port", str(ports["redis"]),
                                "--beanstalk-port", str(ports["beanstalkd"])], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT, env={**os.environ, **env})
    assert wait_for(lambda: "press Ctrl-C" in output.read_text() or run.poll() is not None, 60)
    assert run.poll() is None, output.read_text()
    assert wait_for(lambda: answers(f"http://127.0.0.1:{ports['api']}/health"), 30), output.read_text()
    return run, output


def node_ids(ports, password):
    """Each node's id in the cluster, by port."""
    return {port: redis.Redis(port=port, password=password).execute_command("CLUSTER MYID") for port in ports}


def test_make_run_cluster_makes_its_cluster_once_then_finds_it_again_with_its_payments(tmp_path):
    ports = {"api": free_port(), "redis": free_ports(6, BUS_OFFSET), "beanstalkd": free_ports(2)}
    password = "a password"
    env = {"PORT": str(ports["api"]), "REDIS_PASSWORD": password, "PROCESSING_DELAY": "0", "API_PROCESSES": "1"}
    node_ports = range(ports["redis"], ports["redis"] + 6)
    api = f"http://127.0.0.1:{ports['api']}"

    first, output = start_run_cluster(tmp_path, ports, env)
    try:
        assert "a Redis Cluster of 3 masters and 3 replicas" in output.read_text()
        assert "a new cluster, made with redis-cli --cluster create" in output.read_text()
        status, _, body = http("POST", f"{api}/payments", {"user_id": "u", "amount": 5, "currency": "USD"})
        assert status == 201
        payment_id = body["data"]["id"]
        assert wait_for(lambda: http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "COMPLETED", 30)
        ids = node_ids(node_ports, password)
        assert len(set(ids.values())) == 6
        _, _, queue = http("GET", f"{api}/queue")
        assert len(queue["servers"]) == 2  # both beanstalkd
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C
        assert first.wait(60) == 0
    assert output.read_text().endswith("stopped\n")
    assert not any(port_taken("127.0.0.1", port) for port in [ports["api"], *node_ports, ports["beanstalkd"],
                                                              ports["beanstalkd"] + 1])

    second, output = start_run_cluster(tmp_path, ports, env)
    try:
        assert "the cluster made before" in output.read_text()
        assert node_ids(node_ports, password) == ids  # the same nodes, with their data:
        assert http("GET", f"{api}/payments/{payment_id}")[2]["status"] == "COMPLETED"
        with pytest.raises(redis.AuthenticationError):  # every node requires the password
            redis.Redis(port=ports["redis"] + 5).ping()
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(60) == 0
