"""Run redis-server and beanstalkd as child processes on chosen ports (for `make run` and the tests)."""

import os
import shutil
import socket
import subprocess
import sys
import time

INSTALL_HINT = {"redis-server": "apt-get install redis-server", "beanstalkd": "apt-get install beanstalkd",
                "wrk": "apt-get install wrk"}


def missing(binary: str) -> str | None:
    """None when binary is on PATH, else one line saying how to install it."""
    if shutil.which(binary) is None:
        return f"{binary} is not installed; install it with: {INSTALL_HINT.get(binary, binary)}"
    return None


def require(binary: str) -> str:
    """The path of binary, or exit with one line saying how to install it."""
    if problem := missing(binary):
        sys.exit(problem)
    return shutil.which(binary)


def free_port():
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_command(port, data_dir, password=""):
    """redis-server persisting to an append-only file in data_dir, as docker-compose.yml runs it;
    with a password when one is given."""
    command = [require("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", data_dir,
               "--appendonly", "yes", "--save", ""]
    return command + ["--requirepass", password] if password else command


def beanstalkd_command(port, binlog_dir=None):
    """beanstalkd on 127.0.0.1:port, with its binlog in binlog_dir when one is given."""
    command = [require("beanstalkd"), "-l", "127.0.0.1", "-p", str(port)]
    return command + ["-b", binlog_dir] if binlog_dir else command


def _answers(port, request, reply_prefixes):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(request)
            return sock.recv(64).startswith(reply_prefixes)
    except OSError:
        return False


class LocalServer:
    """One server process that can be stopped and started again on the same port and data."""

    # A request and the replies that mean "up"; a Redis with a password answers -NOAUTH.
    PROBES = {"redis": (b"PING\r\n", (b"+PONG", b"-NOAUTH")), "beanstalkd": (b"stats\r\n", (b"OK ",))}

    def __init__(self, kind, port, command, log_path=os.devnull):
        self.kind, self.port, self.command, self.log_path = kind, port, command, log_path
        self.process = None

    def start(self, timeout=10.0):
        """Start the process and wait until it answers its protocol's ping."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _answers(self.port, *self.PROBES[self.kind]):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not start on port {self.port}: see {self.log_path}")
            time.sleep(0.02)
        return self

    def stop(self, timeout=10.0):
        """Stop the process (SIGTERM, then SIGKILL if it lingers) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
