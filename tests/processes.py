"""Helpers for tests that run the real entry points as child processes and talk HTTP to them."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_for(condition, timeout=10.0):
    """Poll until condition() is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


class Process:
    """An entry point running as a child process, its output collected in a file."""

    def __init__(self, script, env, log_path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen([sys.executable, script], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})

    def output(self):
        with open(self.log_path) as log:
            return log.read()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Send sig (if still running) and return the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout)

    def cpu_seconds(self):
        """User plus system CPU time used so far, from /proc."""
        with open(f"/proc/{self.popen.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http(method, url, body=None, headers=None):
    """(status, headers, decoded JSON) for one request, as curl would send it."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    request = urllib.request.Request(url, method=method, data=body,
                                     headers={**({"Content-Type": "application/json"} if body else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def answers(url):
    """True when an HTTP server answers at url."""
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False
