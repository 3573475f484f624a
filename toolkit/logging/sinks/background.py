"""One thread that writes what the metrics sinks were given, in the order it was given, off the training step.

A step hands its values over (a queue put) and goes on; the thread turns them into JSON lines and
TensorBoard events and writes them. `drain()` waits until everything handed over so far is written:
the logger calls it on flush and close, and at interpreter exit, so the last records are never lost
to a run that ends, fails or is interrupted (only a killed process loses what was still queued).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

# Enough for minutes of steps on a slow disk; past it a step waits for the writer instead of growing memory.
QUEUE_LIMIT = 10_000


class BackgroundWriter:
    """Runs submitted writes one at a time, in order, on a daemon thread started on first use."""

    def __init__(self, warnings_to: logging.Logger, name: str = "ltx2-trace-metrics-writer") -> None:
        self._warnings_to = warnings_to
        self._name = name
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> None:
        """Run `work` on the writer thread after everything submitted before it."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put(work)

    def drain(self) -> None:
        """Return once everything submitted so far has run (at once when called from the writer thread)."""
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._queue.join()

    def stop(self) -> None:
        """Run what is queued, then end the thread; a later `submit` starts a new one."""
        with self._lock:
            thread = self._thread
            if thread is None or threading.current_thread() is thread:
                return
            self._queue.put(None)
            thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            try:
                if work is None:
                    return
                work()
            except Exception:  # noqa: BLE001 - the writer outlives one failed write; the sinks warn about their own
                self._warnings_to.warning("A metrics write failed; the writer goes on with the next.", exc_info=True)
            finally:
                self._queue.task_done()
