"""`make run`: it checks its ports before starting anything, and its servers' start-up probes
leave nothing in their logs."""

import os
import signal
import socket
import subprocess
import sys

import greenstalk

from lib.devtools.local_servers import free_port, local_beanstalkd
from lib.devtools.processes import ROOT


def test_make_run_with_the_api_port_taken_starts_nothing_and_says_what_to_do():
    with socket.socket() as holder:  # something already listening where the API would
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.Popen([sys.executable, "-m", "lib.devtools.run_local"], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port)})
        try:
            out, err = run.communicate(timeout=30)
        finally:
            if run.poll() is None:  # it went on to start everything: stop it the way Ctrl-C would
                run.send_signal(signal.SIGTERM)
                run.communicate(timeout=30)
    assert run.returncode == 1 and out == ""  # nothing started, so nothing said "starting ..."
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
