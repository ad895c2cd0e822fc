"""Log lines: the Go original's format, written by the standard library's own handler."""

import os
import re
import subprocess
import sys

from lib.devtools.processes import ROOT

SCRIPT = """
import logging
from lib.runtime.logs import configure_logging
configure_logging(logging.INFO)
logging.getLogger("paypoc.worker").info("Worker #%d started", 1)
logging.getLogger("paypoc.worker").debug("not shown at INFO")
logging.getLogger("paypoc.worker").warning("Worker #1: Redis is unavailable")
"""


def test_each_record_is_one_line_stamped_as_the_originals_logs():
    # A process of its own, as the API and the worker configure logging once at start-up; this
    # is also the Python the tests run on (Python 3.13 broke a handler that took its lock away).
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                            timeout=30, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    stamp = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"
    assert len(lines) == 2
    assert re.fullmatch(stamp + r" INFO Worker #1 started", lines[0])
    assert re.fullmatch(stamp + r" WARNING Worker #1: Redis is unavailable", lines[1])
