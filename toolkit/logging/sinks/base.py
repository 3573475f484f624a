"""The interface every metrics destination implements, and the set that fans out to them.

Like accelerate's trackers: adding a destination is one small class, not a
branch in the logger.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

from toolkit.logging.sinks.background import BackgroundWriter


class MetricsSink(ABC):
    """A destination for metric values (a file, TensorBoard, W&B)."""

    name: str = "metrics sink"

    @abstractmethod
    def log(self, metrics: dict[str, float], step: int) -> None:
        """Write one set of values recorded at ``step``."""

    def log_record(self, metrics: dict[str, float], step: int, wall_time: float) -> None:
        """``log``, for values logged at ``wall_time`` (unix seconds) and written later by the writer thread;
        a sink that stores a time overrides it to store that one."""
        self.log(metrics, step)

    @abstractmethod
    def flush(self) -> None:
        """Push buffered values to their destination."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the destination; the sink is not used afterwards."""


class SinkSet:
    """Sends each set of metrics to every sink, one set at a time, in the order they were logged.

    With a ``BackgroundWriter`` the sinks write on its thread: ``log`` only hands the values
    over, and ``flush`` and ``close`` first wait for everything handed over. Without one they
    write at once. A sink that raises (disk full, W&B gone) is dropped with one warning that
    names it and carries the error; training and the other sinks go on.
    """

    def __init__(self, warnings_to: logging.Logger, background: BackgroundWriter | None = None) -> None:
        self._sinks: list[MetricsSink] = []
        self._warnings_to = warnings_to
        self._background = background
        self._lock = threading.Lock()

    def add(self, sink: MetricsSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    @property
    def names(self) -> list[str]:
        with self._lock:
            return [sink.name for sink in self._sinks]

    def log(self, metrics: dict[str, float], step: int) -> None:
        # Read without the lock, which the writer thread holds while it writes: a step never waits for a write.
        if not self._sinks:
            return
        wall_time = time.time()
        if self._background is None:
            self._log_now(metrics, step, wall_time)
        else:
            self._background.submit(lambda: self._log_now(metrics, step, wall_time))

    def flush(self) -> None:
        self._wait_for_writes()
        with self._lock:
            self._call_each("flush", lambda sink: sink.flush())

    def close(self) -> None:
        self._wait_for_writes()
        with self._lock:
            sinks, self._sinks = self._sinks, []
            for sink in sinks:
                try:
                    sink.close()
                except Exception:  # noqa: BLE001 - close the others, then report this one
                    self._warnings_to.warning("Closing the %s failed; its last values may be lost.", sink.name, exc_info=True)

    def _wait_for_writes(self) -> None:
        if self._background is not None:
            self._background.drain()

    def _log_now(self, metrics: dict[str, float], step: int, wall_time: float) -> None:
        with self._lock:
            self._call_each("log", lambda sink: sink.log_record(metrics, step, wall_time))

    def _call_each(self, action: str, call) -> None:
        for sink in list(self._sinks):
            try:
                call(sink)
            except Exception:  # noqa: BLE001 - one broken destination must not stop training
                self._sinks.remove(sink)
                self._warnings_to.warning(
                    "The %s failed during %s and is turned off for the rest of the run; "
                    "the other metric destinations go on.",
                    sink.name,
                    action,
                    exc_info=True,
                )
