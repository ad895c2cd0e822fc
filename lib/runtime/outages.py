"""Outages, logged once: a line when a dependency stops answering (or refuses), a line when it is back."""

import logging
import threading


class OutageLog:
    """Remembers which dependencies are down, so an outage is one log line, not one per retry."""

    def __init__(self, log: logging.Logger, who: str, meanwhile: str = "retrying"):
        self.log, self.who = log, who
        self.meanwhile = f"; {meanwhile}" if meanwhile else ""  # what the process does until it is back
        self._down = set()
        self._lock = threading.Lock()  # the API's threads share one

    def failed(self, name: str, cause: str) -> None:
        """name did not answer, or refused (cause says why): log it if this is the start of an outage."""
        with self._lock:
            new = name not in self._down
            self._down.add(name)
        if new:
            self.log.warning("%s: %s is unavailable (%s)%s", self.who, name, cause, self.meanwhile)

    def answered(self, name: str) -> bool:
        """name answered: log that it is back if it was down; return whether it was."""
        if name not in self._down:  # the usual case, read without taking the lock
            return False
        with self._lock:
            was_down = name in self._down
            self._down.discard(name)
        if was_down:
            self.log.info("%s: %s is back", self.who, name)
        return was_down
