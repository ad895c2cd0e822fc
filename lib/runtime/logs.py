"""Logging set-up: one line per event on standard output, stamped as the Go original's logs are."""

import logging
import logging.handlers
import sys
import threading
import time

LINE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
TIME_FORMAT = "%Y/%m/%d %H:%M:%S"  # 2026/11/24 10:00:00, as in the original's worker log
FLUSH_EVERY = 0.2  # seconds an INFO line may wait before it is written


def configure_logging(level: int, batched: bool = True) -> None:
    """Send every record at `level` or above to standard output, one line each; batched, by a
    thread of its own (a supervisor, which must start no thread before it forks, writes each
    line at once)."""
    output = logging.StreamHandler(sys.stdout)
    output.setFormatter(logging.Formatter(LINE_FORMAT, TIME_FORMAT))
    if not batched:
        logging.basicConfig(level=level, handlers=[output], force=True)
        return
    # Lines are written in batches, every FLUSH_EVERY seconds and at once from a warning up: a
    # busy API logs a line per request, and a write of its own for each line would have every
    # request thread queue for the stream. The cost: a process killed with kill -9 loses the
    # INFO lines of its last FLUSH_EVERY seconds.
    batches = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.WARNING, target=output)
    threading.Thread(target=_flush_every, args=(batches,), name="log-flush", daemon=True).start()
    logging.basicConfig(level=level, handlers=[batches], force=True)
    # Under load waitress warns about every request that waits for a free thread; the access
    # log already shows the load, so only its errors are kept.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def _flush_every(handler: logging.Handler) -> None:
    while True:
        time.sleep(FLUSH_EVERY)
        handler.flush()
