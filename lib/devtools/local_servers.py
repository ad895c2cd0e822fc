"""redis-server and beanstalkd as child processes on chosen ports (for `make run`, the tests and the bench)."""

import errno
import os
import shutil
import socket
import subprocess
import sys
import time

INSTALL_HINT = {"redis-server": "apt-get install redis-server", "beanstalkd": "apt-get install beanstalkd",
                "wrk": "apt-get install wrk", "curl": "apt-get install curl"}


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


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """True when something listens on host:port already, so that a server could not bind it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no owner
        try:
            sock.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def _answers(port, request, reply_prefixes):
    """True when the server on port answers request with one of reply_prefixes.

    The request ends with the protocol's quit, and the whole answer is read, so the server
    closes the connection: one closed with an answer unread is reset, and beanstalkd logs
    "read(): Connection reset by peer" for each.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(request)
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
            return reply.startswith(reply_prefixes)
    except OSError:
        return False


class LocalServer:
    """One server process that can be stopped and started again on the same port and data."""

    # A request and the replies that mean "up"; a Redis with a password answers -NOAUTH.
    PROBES = {"redis": (b"PING\r\nQUIT\r\n", (b"+PONG", b"-NOAUTH")),
              "beanstalkd": (b"list-tube-used\r\nquit\r\n", (b"USING ",))}

    def __init__(self, kind: str, port: int, command: list[str], log_path: str = os.devnull, stdin: str = ""):
        self.kind, self.port, self.command, self.log_path, self.stdin = kind, port, command, log_path, stdin
        self.process = None

    def start(self, timeout: float = 10.0) -> "LocalServer":
        """Start the process and wait until it answers its protocol's ping."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.PIPE, start_new_session=True)
        self.process.stdin.write(self.stdin.encode())
        self.process.stdin.close()
        deadline = time.monotonic() + timeout
        while not _answers(self.port, *self.PROBES[self.kind]):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not start on port {self.port}: see {self.log_path}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL if it lingers) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def local_redis(port: int, data_dir: str, log_path: str = os.devnull, password: str = "",
                 *options: str) -> LocalServer:
    """redis-server on 127.0.0.1:port keeping an append-only file in data_dir, as the Compose
    stack runs it. The password, if any, is the one it requires and the one it presents to its
    master when it is a cluster's replica; it is read from standard input (`redis-server -`), so
    it is on no command line that `ps` shows."""
    command = [require("redis-server"), "-", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
               "--appendonly", "yes", "--save", "", *options]
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    config = f'requirepass "{escaped}"\nmasterauth "{escaped}"\n' if password else ""
    return LocalServer("redis", port, command, str(log_path), config)


def local_beanstalkd(port: int, log_path: str = os.devnull, binlog_dir: str | None = None) -> LocalServer:
    """beanstalkd on 127.0.0.1:port, with its binlog in binlog_dir when one is given."""
    command = [require("beanstalkd"), "-l", "127.0.0.1", "-p", str(port)]
    return LocalServer("beanstalkd", port, command + (["-b", str(binlog_dir)] if binlog_dir else []), str(log_path))
