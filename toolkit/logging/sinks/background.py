"""One thread that writes what the metrics sinks were given, in the order it was given, off the training step.

A step only appends its values to a list; the thread wakes every `WRITE_INTERVAL_S` and writes
everything waiting as JSON lines, TensorBoard events and W&B calls. Waking the thread for every
record would hand Python's interpreter lock over several times a step, and on a busy machine each
handover can cost the step milliseconds. `drain()` waits until everything handed over so far is
written: the logger calls it on flush and close, and at interpreter exit, so the last records are
never lost to a run that ends, fails or is interrupted (only a killed process loses what waited).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

WRITE_INTERVAL_S = 0.5
# Past this many waiting writes (a disk slower than the steps) the step waits for the writer instead of growing memory.
QUEUE_LIMIT = 10_000
_STOP = object()


class BackgroundWriter:
    """Runs submitted writes one at a time, in order, on a daemon thread started on first use."""

    def __init__(
        self, warnings_to: logging.Logger, interval_s: float = WRITE_INTERVAL_S, name: str = "ltx2-trace-metrics-writer"
    ) -> None:
        self._warnings_to = warnings_to
        self._interval_s = interval_s
        self._name = name
        self._pending: deque = deque()  # append and popleft are atomic: the step takes no lock
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # starting and stopping the thread

    def submit(self, work: Callable[[], None]) -> None:
        """Run `work` on the writer thread, after everything submitted before it, within `interval_s`."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()
        self._pending.append(work)
        if len(self._pending) >= QUEUE_LIMIT:
            self.drain()

    def drain(self) -> None:
        """Return once everything submitted so far has run (at once when called from the writer thread)."""
        thread = self._thread
        if thread is None or threading.current_thread() is thread:
            return
        done = threading.Event()
        self._pending.append(done.set)
        self._wake.set()
        while not done.wait(1.0):
            if not thread.is_alive():
                return

    def stop(self) -> None:
        """Run what is waiting, then end the thread; a later `submit` starts a new one."""
        with self._lock:
            thread = self._thread
            if thread is None or threading.current_thread() is thread:
                return
            self._pending.append(_STOP)
            self._wake.set()
            thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            while self._pending:
                work = self._pending.popleft()
                if work is _STOP:
                    return
                try:
                    work()
                except Exception:  # noqa: BLE001 - the writer outlives one failed write; the sinks warn about their own
                    self._warnings_to.warning("A metrics write failed; the writer goes on with the next.", exc_info=True)
