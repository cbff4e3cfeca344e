"""Split: run part of a diagnose in a forked process, so a big recording is analysed on two cores.

The engine gives the child half of the detectors; the child reads the same file on its own (reading is cheap
next to the detectors), feeds them, and sends them back pickled (their state is bounded: windows, counters,
capped examples). Fork, not spawn: the child starts in milliseconds with everything already imported.

Forking a process that runs other threads can leave the child stuck on a lock one of them held, so
:func:`fork` refuses (returns ``None``) unless the caller is the only thread; the engine then does everything
in-process. A child that fails is reported by :meth:`Forked.result` returning ``None``, never by a crash.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Any


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def possible() -> bool:
    """True when a worker can be forked safely here: POSIX fork, two or more cores, no other threads."""
    if os.environ.get("SLACKOPS_DIAGNOSE_SPLIT", "1") == "0":
        return False
    return hasattr(os, "fork") and cores() >= 2 and threading.active_count() == 1


class Forked:
    """A forked child computing one picklable value."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        #: the child's peak RSS in KiB (from its rusage), once collected
        self.maxrss_kib = 0

    def result(self) -> Any | None:
        """Wait for the child; its value, or ``None`` if it failed."""
        with os.fdopen(self.fd, "rb") as pipe:
            data = pipe.read()
        _, status, usage = os.wait4(self.pid, 0)
        self.maxrss_kib = usage.ru_maxrss
        if os.waitstatus_to_exitcode(status) != 0 or not data:
            return None
        try:
            return pickle.loads(data)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None

    def cancel(self) -> None:
        """Stop the child (the parent failed or was interrupted) and reap it."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass  # result() was interrupted after closing it
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass  # already reaped


def fork(work: Callable[[], Any]) -> Forked | None:
    """Run ``work()`` in a forked child; ``None`` when forking is not possible here (see :func:`possible`)."""
    if not possible():
        return None
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid:
        os.close(w)
        return Forked(pid, r)
    # The child: never return into the caller's stack, never run its atexit handlers or flush its buffers.
    status = 1
    try:
        os.close(r)
        # Everything inherited is left to the parent: collections in the child would walk (and write to) every
        # inherited object, copying the pages it shares with the parent.
        gc.freeze()
        data = pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(w, "wb") as pipe:
            pipe.write(data)
        status = 0
    finally:
        os._exit(status)
