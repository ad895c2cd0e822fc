"""Log lines: the seed's format, with a timestamp that follows each record's own second."""

import logging
import time

from lib.logs import SecondsFormatter


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
