"""Heartbeat: a daemon thread that makes long-open spans say they are still running."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

from toolkit.trace.errors import TraceSinkWarning

THREAD_NAME = "ltx2-trace-heartbeat"


class Heartbeat:
    """Calls ``beat`` a few times per ``interval_s`` until stopped.

    ``beat`` decides which spans are due; checking more often than the interval
    keeps a "still running" line within a quarter interval of when it is due.
    Only the enabled tracer creates one, so verbose-off runs have no extra thread.
    """

    def __init__(self, beat: Callable[[], None], interval_s: float) -> None:
        self._beat = beat
        self._check_every_s = min(interval_s / 4, 1.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._check_every_s):
            try:
                self._beat()
            except Exception as error:
                warnings.warn(
                    f"Verbose trace: the heartbeat stopped after an error ({type(error).__name__}: {error}); "
                    "long spans will no longer print 'still running'. Spans and events are still traced.",
                    TraceSinkWarning,
                    stacklevel=1,
                )
                return

    def stop(self) -> None:
        """Stop the thread and wait briefly for it; safe to call twice."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
