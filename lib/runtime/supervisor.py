"""Several processes of one program: a parent forks them, replaces any that dies, and stops them all."""

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger("paypoc.supervisor")

PARENT_CHECK_EVERY = 0.5  # seconds between a child's looks at whether its parent is still there
RESTART_PAUSE = 1.0  # seconds before replacing a child that died within this long of starting
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class Supervisor:
    """Runs child(slot) in `count` forked processes, slots 0 to count-1, until SIGTERM or Ctrl-C.

    The parent does nothing else: it starts no thread and opens no connection, so every child
    starts clean and makes its own clients. A child that dies unexpectedly is logged and
    replaced in its slot. SIGTERM or SIGINT is passed on to every child as SIGTERM, once per
    signal: the first asks them to finish what they hold, a second (for the worker) to stop at
    once. Children ignore SIGINT, so a Ctrl-C reaching the whole process group counts once.
    A child whose parent is gone (killed with kill -9) stops by itself.
    """

    def __init__(self, name: str, count: int, child: Callable[[int], int], pin: bool = False):
        self.name, self.count, self.child, self.pin = name, count, child, pin
        self.pids: dict[int, int] = {}  # pid -> slot
        self.started: dict[int, float] = {}  # slot -> when its child was started
        self.stopping = False

    def run(self) -> int:
        """Start every child, keep them running until told to stop, then wait for them; 0 if all ended cleanly."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for slot in range(self.count):
            self._start(slot)
        clean = True
        while self.pids:
            pid, status = os.wait()  # a signal runs its handler and the wait goes on (PEP 475)
            slot = self.pids.pop(pid, None)
            if slot is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                # A child told to stop before it could set its own way of stopping ends by the signal.
                clean = clean and code in (0, -signal.SIGTERM)
                continue
            log.error("%s process %d (pid %d) exited with status %d; starting another", self.name, slot + 1, pid, code)
            if time.monotonic() - self.started[slot] < RESTART_PAUSE:
                time.sleep(RESTART_PAUSE)  # a child that cannot start must not become a fork loop
            self._start(slot)
        return 0 if clean else 1

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:  # it has exited, and os.wait() has it: not yet off the list
                pass

    def _start(self, slot: int) -> None:
        self.started[slot] = time.monotonic()
        parent = os.getpid()
        # Signals wait while the child is made, so that a SIGTERM now is passed on to it too.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        if self.stopping:  # one came before they were held: no new child
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            return
        pid = os.fork()
        if pid:
            self.pids[pid] = slot
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            return
        code = 1
        try:
            # Until child() sets its own way to stop, SIGTERM ends it; Ctrl-C reaches it through us.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            if self.pin:
                _pin(slot)
            threading.Thread(target=_stop_when_orphaned, args=(parent,), name="parent-check", daemon=True).start()
            code = self.child(slot)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            logging.shutdown()  # flush what the child logged
            os._exit(code)


def _stop_when_orphaned(parent: int) -> None:
    """In a child: once the parent is gone, stop this process as the parent would have, by SIGTERM."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_EVERY)
    log.warning("The parent process %d is gone: stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def _pin(slot: int) -> None:
    """Keep this process on one core, the slot-th of those it may use, so that its threads hand
    Python's lock to each other there instead of waking a thread on another core each time."""
    try:
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[slot % len(cores)]})
    except (AttributeError, OSError) as error:  # not Linux, or not allowed here
        log.warning("Cannot pin process %d to a core (%s); it runs unpinned", slot + 1, error)
