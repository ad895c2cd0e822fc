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


def cpu_seconds(pid: int, with_ended_children: bool = False) -> float:
    """User plus system CPU time a running process has used so far, from /proc (0 if it has ended);
    with_ended_children, also that of the children it has waited for."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0  # it ended while we looked
    # utime and stime, then cutime and cstime
    return sum(int(field) for field in fields[11:15 if with_ended_children else 13]) / os.sysconf("SC_CLK_TCK")


class Process:
    """python ARGS (an entry point such as paypoc.py, or -m and a module) run from the project's
    root in a process group of its own (with the processes it forks), its output collected in a file."""

    def __init__(self, args: list[str], env: dict, log_path: str | Path):
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
        self.pid = self.popen.pid

    def output(self) -> str:
        """Everything the process has written so far."""
        with open(self.log_path) as log:
            return log.read()

    def running(self) -> bool:
        """True until the process has exited."""
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Send sig to the process itself (if still running) and return its exit status."""
        if self.running():
            self.popen.send_signal(sig)
        return self.popen.wait(timeout)

    def kill_all(self) -> None:
        """kill -9 the process and every process it forked, as a crash of the machine would."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # every one of them has exited already
        self.popen.wait()

    def children(self) -> list[int]:
        """The pids of the processes it forked that are running now."""
        with open(f"/proc/{self.pid}/task/{self.pid}/children") as children:
            return [int(pid) for pid in children.read().split()]

    def _pids(self) -> list[int]:
        """The process and those it forked."""
        return [self.pid, *self.children()]

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process and the processes it forked have used so far, from /proc."""
        # For the process itself also the time of its children that ended; for a running child, its own.
        return sum(cpu_seconds(pid, with_ended_children=pid == self.pid) for pid in self._pids())

    def context_switches(self) -> int:
        """Context switches of all the threads of the process and those it forked so far, from /proc."""
        switches = 0
        for pid in self._pids():
            for thread in os.listdir(f"/proc/{pid}/task") if os.path.exists(f"/proc/{pid}/task") else []:
                try:
                    with open(f"/proc/{pid}/task/{thread}/status") as status:
                        switches += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
                except FileNotFoundError:
                    pass  # the thread ended while we looked
        return switches

    def memory_mb(self) -> tuple[float, float]:
        """(peak, current) resident memory, in MB, from /proc, of the biggest of the process and those it
        forked: each of them is held to the limits (a sum would count the pages they share twice)."""
        peak = current = 0
        for pid in self._pids():
            fields = {}
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    name, _, value = line.partition(":")
                    fields[name] = value
            peak, current = max(peak, int(fields["VmHWM"].split()[0])), max(current, int(fields["VmRSS"].split()[0]))
        return peak / 1024, current / 1024


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
