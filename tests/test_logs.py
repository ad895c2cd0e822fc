"""Log lines: the seed's format, a timestamp that follows each record's own second, written whole
and in order in batches."""

import io
import logging
import threading
import time
import uuid

import pytest

from lib.logs import MAX_WAITING_LINES, BatchingStreamHandler, SecondsFormatter


def record_at(created, message="Worker #1 started"):
    return logging.makeLogRecord({"msg": message, "levelname": "INFO", "levelno": logging.INFO, "created": created})


def seed_stamp(created):
    return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(created))


def test_a_line_reads_like_the_seeds_logs():
    created = 1_795_600_000.25
    assert SecondsFormatter().format(record_at(created)) == f"{seed_stamp(created)} INFO Worker #1 started"


def test_the_timestamp_changes_with_the_second_and_only_then():
    formatter = SecondsFormatter()
    first, same_second, next_second, back_again = 1_795_600_000.1, 1_795_600_000.9, 1_795_600_001.0, 1_795_600_000.5
    stamps = [formatter.format(record_at(t)).rsplit(" INFO", 1)[0] for t in (first, same_second, next_second, back_again)]
    assert stamps == [seed_stamp(first), seed_stamp(first), seed_stamp(next_second), seed_stamp(first)]
    assert stamps[1] != stamps[2]


@pytest.fixture
def logged():
    """A logger whose handler never flushes on its own during the test; yields (logger, stream)."""
    stream = io.BytesIO()
    handler = BatchingStreamHandler(stream, interval=3600)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-{uuid.uuid4()}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, stream
    handler.close()


def written(stream):
    return stream.getvalue().decode().splitlines()


def test_info_lines_wait_and_a_warning_takes_them_out_in_order(logged):
    logger, stream = logged
    logger.info("first")
    logger.info("second")
    assert written(stream) == []  # waiting for the flush thread
    logger.warning("third")
    assert written(stream) == ["INFO first", "INFO second", "WARNING third"]


def test_lines_from_many_threads_arrive_whole_and_once(logged):
    logger, stream = logged
    threads = [threading.Thread(target=lambda n=n: [logger.info("thread %d line %d", n, i) for i in range(2000)])
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.handlers[0].flush_now()
    lines = written(stream)
    assert sorted(lines) == sorted(f"INFO thread {n} line {i}" for n in range(8) for i in range(2000))
    for n in range(8):  # each thread's lines in the order it logged them
        assert [line for line in lines if line.startswith(f"INFO thread {n} ")] == \
            [f"INFO thread {n} line {i}" for i in range(2000)]


def test_a_full_queue_is_written_by_the_thread_that_fills_it(logged):
    logger, stream = logged
    for i in range(MAX_WAITING_LINES):
        logger.info("line %d", i)
    assert len(written(stream)) == MAX_WAITING_LINES  # no unbounded memory when the flusher lags
