"""Request durations: a histogram per (method, route), in memory that every API process shares."""

import bisect
import copy
import mmap
import threading
from collections.abc import Callable, Iterator

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds


class RequestDurations:
    """Histograms of request durations, one row per API process, that /metrics sums over them all.

    /metrics is answered by whichever process takes the connection; a histogram of its own
    would jump from scrape to scrape, and Prometheus would read every drop as a restart. So the
    supervisor makes this table in an anonymous shared mapping before it forks: each process
    adds only to its own row (its threads take turns through a lock), and a scrape sums every
    row. A process that replaces a dead one takes its row over, so no sum ever goes down.

    A row holds, for each (method, route) series, a count per bucket, one for +Inf, and the sum
    of the durations in microseconds: whole numbers, which a reader in another process can
    never see half written.
    """

    def __init__(self, methods: list[str], routes: list[str], processes: int = 1,
                 buckets: tuple[float, ...] = BUCKETS):
        self.buckets = buckets
        self.series = [(method, route) for method in methods for route in routes]
        self._index = {series: number for number, series in enumerate(self.series)}
        self._width = len(buckets) + 2  # the buckets, +Inf, and the sum
        self._processes = processes
        self._memory = mmap.mmap(-1, processes * len(self.series) * self._width * 8)  # shared with forked children
        self._cells = memoryview(self._memory).cast("q")  # signed 64-bit integers
        self._row = 0
        self._lock = threading.Lock()

    @classmethod
    def for_routes(cls, routes: list[tuple[str, str, Callable]], processes: int = 1) -> "RequestDurations":
        """A table for every method and route of a route table, with HEAD for GET routes and
        "other" for methods no route has; "unmatched" for paths no route has."""
        methods = {method for method, _, _ in routes}
        methods |= {"HEAD"} if "GET" in methods else set()
        return cls(sorted(methods) + ["other"], [template for _, template, _ in routes] + ["unmatched"], processes)

    def for_process(self, number: int) -> "RequestDurations":
        """This table as API process `number` (from 0) writes it: the same memory, its own row."""
        view = copy.copy(self)
        view._row, view._lock = number, threading.Lock()
        return view

    def observe(self, method: str, route: str, seconds: float) -> None:
        """Count one request that took `seconds`."""
        start = (self._row * len(self.series) + self._index[(method, route)]) * self._width
        bucket = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            self._cells[start + bucket] += 1
            self._cells[start + self._width - 1] += round(seconds * 1_000_000)

    def samples(self) -> Iterator[tuple[list[tuple[str, str]], list[int], float]]:
        """(labels, cumulative bucket counts with +Inf last, sum in seconds) for every series with a
        request in it, summed over every process's row."""
        for number, (method, route) in enumerate(self.series):
            totals = [0] * self._width
            for row in range(self._processes):
                start = (row * len(self.series) + number) * self._width
                totals = [total + cell for total, cell in zip(totals, self._cells[start:start + self._width])]
            *counts, total_us = totals
            if not any(counts):
                continue
            cumulative, running = [], 0
            for count in counts:
                running += count
                cumulative.append(running)
            yield [("method", method), ("route", route)], cumulative, total_us / 1_000_000
