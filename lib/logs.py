"""Logging set-up: one line per event, in the seed's format, written in batches under load."""

import collections
import logging
import sys
import threading

FLUSH_INTERVAL = 0.2  # seconds an INFO line may wait before it is written
MAX_WAITING_LINES = 10_000  # beyond this a logging thread writes them out itself (backpressure)


class BatchingStreamHandler(logging.Handler):
    """A handler that queues each formatted line and writes the queue out every FLUSH_INTERVAL,
    from a thread of its own; warnings and errors go out at once, with the lines before them.

    A busy API logs a line per request. Writing each line to the stream from the request's
    thread cost more than the line itself: a system call when flushed at once, and when
    buffered, threads queuing on the stream's lock under load (on `/health`, about 85 µs of CPU
    and three context switches a request). Appending to a deque takes no lock of ours, and a
    deque's appends and pops are safe from several threads at once.
    """

    def __init__(self, stream, interval=FLUSH_INTERVAL):
        super().__init__()
        self.stream = stream  # binary: lines are encoded here, once per batch
        self._waiting = collections.deque()
        self._write_lock = threading.Lock()  # one writer at a time: the thread, a warning, close
        self._stopped = threading.Event()
        threading.Thread(target=self._flush_every, args=(interval,), name="log-flush", daemon=True).start()

    def createLock(self):
        """No handler lock: emit only appends to the deque (Handler.acquire skips a None lock)."""
        self.lock = None

    def emit(self, record):
        try:
            self._waiting.append(self.format(record) + "\n")
        except Exception:
            self.handleError(record)
        if record.levelno >= logging.WARNING or len(self._waiting) >= MAX_WAITING_LINES:
            self.flush_now()

    def flush_now(self):
        """Write out every line waiting, in the order they were logged."""
        with self._write_lock:
            lines = [self._waiting.popleft() for _ in range(len(self._waiting))]
            if lines and not self.stream.closed:
                self.stream.write("".join(lines).encode("utf-8", "backslashreplace"))
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
    stream = open(sys.stdout.fileno(), "wb", buffering=64 * 1024, closefd=False)
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
