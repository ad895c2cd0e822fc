"""`make screenshot`: docs/dashboard.png, the page at / after the rate-limit burst, taken in headless
Chromium from a stack of its own (Redis, beanstalkd, the API and a worker on free ports)."""

import argparse
import os
import sys
import tempfile

from lib.devtools.browser import Browser, chromium_problem
from lib.devtools.local_servers import free_port, local_beanstalkd, local_redis
from lib.devtools.processes import Process, answers, wait_for

OUTPUT = "docs/dashboard.png"
# The documented defaults for everything the picture shows (five 201s, then five 429s), whatever the
# shell has set; a shorter processing delay, so the burst's payments are seen at every stage in seconds.
SETTINGS = {"HOST": "127.0.0.1", "RATE_LIMIT": "5", "RATE_LIMIT_WINDOW": "60", "MAX_WORKERS": "1",
            "PROCESSING_DELAY": "1.5", "FAILURE_RATE": "0", "LOG_LEVEL": "INFO"}
SENT_STATUSES = "[...document.querySelectorAll('#sent tr')].map((tr) => tr.cells[4].textContent)"


def drive(browser: Browser, base: str, worker_pid: int) -> None:
    """Send one payment and watch it complete, then send the burst and wait until its first payment is done."""
    browser.open(base + "/")
    browser.wait_for(f"document.getElementById('workers').textContent.includes('-{worker_pid}')")
    browser.evaluate("document.getElementById('send').click()")
    browser.wait_for(f"({SENT_STATUSES})[0] === 'COMPLETED'")
    browser.evaluate("document.getElementById('burst').click()")
    browser.wait_for("document.getElementById('exchange').textContent.includes('\\n10  ')")
    # The five taken are the newest rows: one done, the next in hand, the rest waiting in the tube.
    browser.wait_for(f"({SENT_STATUSES}).slice(0, 5).includes('COMPLETED')")


def main(output: str = OUTPUT) -> int:
    """Start the stack, drive the page, write the PNG, stop everything; 1 with the reason when a step fails."""
    if problem := chromium_problem():
        print(problem, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="paypoc-screenshot-") as scratch:
        servers = [local_redis(free_port(), scratch, f"{scratch}/redis.log"),
                   local_beanstalkd(free_port(), f"{scratch}/beanstalkd.log")]
        processes = []
        try:
            for server in servers:
                server.start()
            port = free_port()
            env = {**SETTINGS, "PORT": str(port), "REDIS_URL": f"redis://127.0.0.1:{servers[0].port}/0",
                   "BEANSTALK_ADDR": f"127.0.0.1:{servers[1].port}"}
            processes = [Process([script], env, f"{scratch}/{script}.log")
                         for script in ("paypoc.py", "paypoc_worker.py")]
            base = f"http://127.0.0.1:{port}"
            if not wait_for(lambda: answers(f"{base}/health")):
                raise RuntimeError(f"the API did not start:\n{processes[0].output()}")
            with Browser(f"{scratch}/chromium.log", width=1200) as browser:
                drive(browser, base, wait_for(processes[1].children)[0])  # the worker process it forked
                os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
                browser.screenshot(output)
        except (RuntimeError, TimeoutError) as error:
            print(f"make screenshot: {error}", file=sys.stderr)
            return 1
        finally:
            for process in processes:
                process.stop()
            for server in servers:
                server.stop()
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUTPUT, help=f"where to write the PNG (default {OUTPUT})")
    sys.exit(main(parser.parse_args().out))
