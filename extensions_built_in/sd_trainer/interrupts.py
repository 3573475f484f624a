"""Ctrl-C and SIGTERM during training: finish the step, save, then stop."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """While active, SIGINT/SIGTERM set `requested` instead of killing the process.

    A second Ctrl-C raises KeyboardInterrupt at once (for a step that hangs).
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self.signum = signal.SIGINT  # the signal that asked to stop (SIGINT when another process asked)
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
