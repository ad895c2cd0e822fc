"""Logging set-up: one line per event, in the seed's format, written in batches under load."""

import logging
import sys
import threading

FLUSH_INTERVAL = 0.2  # seconds an INFO line may wait in the buffer


class BatchingStreamHandler(logging.StreamHandler):
    """A StreamHandler that flushes every FLUSH_INTERVAL instead of after every line.

    A busy API logs a line per request; flushing each one is a system call per request, which
    costs more than the line itself. Warnings and errors are still flushed at once.
    """

    def __init__(self, stream, interval=FLUSH_INTERVAL):
        super().__init__(stream)
        self._stopped = threading.Event()
        threading.Thread(target=self._flush_every, args=(interval,), name="log-flush", daemon=True).start()

    def emit(self, record):
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self.flush_now()

    def flush(self):
        """Called by emit after every record: deliberately nothing, the thread flushes."""

    def flush_now(self):
        """Write out what is buffered."""
        with self.lock:
            if not self.stream.closed:
                self.stream.flush()

    def _flush_every(self, interval):
        while not self._stopped.wait(interval):
            self.flush_now()

    def close(self):
        self._stopped.set()
        self.flush_now()
        super().close()


class SecondsFormatter(logging.Formatter):
    """The seed's line format. Its timestamp is to the second, so it is written once a second
    and reused, instead of converting the time for every line."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(message)s", "%Y/%m/%d %H:%M:%S")
        self._last = (None, "")  # (second, its text), replaced whole: threads read it unlocked

    def formatTime(self, record, datefmt=None):
        second = int(record.created)
        last_second, text = self._last
        if second != last_second:
            text = super().formatTime(record, self.datefmt)
            self._last = (second, text)
        return text


def configure_logging(level):
    """One line per event, timestamped like the seed's logs: 2026/11/24 10:00:00 INFO ..."""
    # Our own buffered stream on standard output, whatever PYTHONUNBUFFERED says.
    stream = open(sys.stdout.fileno(), "w", buffering=64 * 1024, encoding="utf-8", closefd=False)
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(SecondsFormatter())
    # The lines never show the caller, thread or process, so records need not look them up (the
    # logging HOWTO's "Optimization" settings): a busy API writes a line per request.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Under load waitress warns on every request that waits for a free thread; the access
    # log already shows the load, so only its errors are kept.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
