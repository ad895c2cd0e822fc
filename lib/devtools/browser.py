"""Headless Chromium driven over its DevTools pipe, for the page's tests and `make screenshot`: open a
page, run JavaScript in it, wait on what it shows, take a screenshot, and keep every console message,
uncaught exception and error the browser logs on the way."""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

BINARY = "chromium"
# Headless, as root in a container (no sandbox, no GPU), and quiet: no first-run, sync or update traffic.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--remote-debugging-pipe"]
# Chromium reads DevTools commands on fd 3 and writes its answers on fd 4. subprocess can place a pipe
# only on 0, 1 and 2 (short of preexec_fn, unsafe in a process with threads), so a shell moves them.
PIPE_SHELL = 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2'


def chromium_problem() -> str | None:
    """None when Chromium is installed, else one line saying how to install it."""
    if shutil.which(BINARY) is None:
        return f"{BINARY} is not installed; install it with: apt-get install {BINARY}"
    return None


class Browser:
    """One headless Chromium with one tab; a context manager that stops the browser on exit.

    It runs in real time, unlike `chromium --dump-dom --virtual-time-budget`: under virtual time the
    page's one-second polls follow each other as fast as the API answers, so whether it saw the worker
    finish would depend on speed. Here a caller waits on what the page shows, for as long as it takes.
    """

    def __init__(self, log_path: str = os.devnull, width: int = 1100, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="paypoc-chromium-")
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(["sh", "-c", PIPE_SHELL, shutil.which(BINARY), *FLAGS,
                                             f"--user-data-dir={self.profile}", "about:blank"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        self.events, self._buffer, self._next_id, self.session = [], b"", 0, None
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Runtime", "Log", "Page"):  # so that their events (console, errors) come to us
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def send(self, method: str, timeout: float = 15, **params: object) -> dict:
        """Send one DevTools command to the tab (or, before there is one, the browser) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self.process.stdin.write(json.dumps(message).encode() + b"\0")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            if reply.get("sessionId") == self.session and "method" in reply:
                self.events.append(reply)

    def _read(self, deadline):
        """The next message from Chromium; they come separated by NUL bytes."""
        while b"\0" not in self._buffer:
            if not select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited with status {self.process.wait()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, timeout: float = 15) -> None:
        """Go to url and wait until the page and its first script have loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']['text']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> object:
        """Evaluate expression every 0.1 s until it is truthy; its value, or TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never showed {expression}; it reported {self.problems() or 'nothing'}")
            time.sleep(0.1)
        return value

    def problems(self) -> list[str]:
        """Everything the page wrote to the console, every uncaught exception, every error the browser logged."""
        self.evaluate("0")  # collects the events sent so far
        found = []
        for event in self.events:
            params = event["params"]
            if event["method"] == "Runtime.consoleAPICalled":
                found.append(f"console.{params['type']}: " + " ".join(str(arg.get("value")) for arg in params["args"]))
            elif event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details["text"])
            elif event["method"] == "Log.entryAdded":
                found.append(f"{params['entry']['level']} ({params['entry']['source']}): {params['entry']['text']}")
        return found

    def screenshot(self, path: str) -> None:
        """Write the whole page, as tall as its content, to path as a PNG."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        png = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        with open(path, "wb") as file:
            file.write(base64.b64decode(png["data"]))

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        try:
            self.session = None
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass  # it is being stopped anyway
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
