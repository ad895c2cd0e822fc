"""Child processes of the project's code and HTTP requests to them, for the tests, the bench and the demo."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])  # the project's root, where paypoc.py is


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> object:
    """Poll until condition() is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


class Process:
    """python ARGS (an entry point such as paypoc.py, or -m and a module) run from the project's
    root, its output collected in a file."""

    def __init__(self, args: list[str], env: dict, log_path: str | Path):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})
        self.pid = self.popen.pid

    def output(self) -> str:
        """Everything the process has written so far."""
        with open(self.log_path) as log:
            return log.read()

    def running(self) -> bool:
        """True until the process has exited."""
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send sig (if still running) and return the exit status."""
        if self.running():
            self.popen.send_signal(sig)
        return self.popen.wait(timeout)

    def cpu_seconds(self) -> float:
        """User plus system CPU time used so far, from /proc."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def context_switches(self) -> int:
        """Context switches of all its threads so far, from /proc."""
        switches = 0
        for thread in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{thread}/status") as status:
                    switches += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
            except FileNotFoundError:
                pass  # the thread ended while we looked
        return switches

    def memory_mb(self) -> tuple[float, float]:
        """(peak, current) resident memory, in MB, from /proc."""
        fields = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value
        return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def http(method: str, url: str, body: dict | bytes | None = None, headers: dict | None = None,
         timeout: float = 10) -> tuple[int, dict, object]:
    """(status, headers, decoded JSON) of one request, as curl would send it; OSError when nothing answers."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    sent = {**({"Content-Type": "application/json"} if body else {}), **(headers or {})}
    request = urllib.request.Request(url, method=method, data=body, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def answers(url: str) -> bool:
    """True when an HTTP server answers 200 at url."""
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False
