"""A run stopped by a signal: Ctrl-C (SIGINT) and SIGTERM end in one line and exit 130 / 143, in any phase.

Python turns SIGINT into KeyboardInterrupt; `sigterm_stops()` (run.py) makes SIGTERM raise
`Stopped`, a KeyboardInterrupt too, so both unwind the same way: every `finally` runs (the run
lock is removed, logs are closed), and a process that knows what it was doing and what it has
saved re-raises it with that (`Stopped.from_interrupt`). Stopping gracefully (finish the step,
save, then stop) is the trainer's own business (extensions_built_in/sd_trainer/interrupts.py).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Stopped(KeyboardInterrupt):
    """Stopped by `signum`; `phase` says what the run was doing, `outcome` what is saved and how to go on."""

    def __init__(self, signum: int = signal.SIGINT, phase: str | None = None, outcome: str | None = None) -> None:
        super().__init__(signum)
        self.signum = int(signum)
        self.phase = phase
        self.outcome = outcome

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum

    @classmethod
    def from_interrupt(cls, interrupt: KeyboardInterrupt, phase: str | None = None, outcome: str | None = None) -> Stopped:
        """`interrupt` (a plain KeyboardInterrupt is Ctrl-C) with what the caller knows added where it was not known."""
        if isinstance(interrupt, Stopped):
            return cls(interrupt.signum, interrupt.phase or phase, interrupt.outcome or outcome)
        return cls(signal.SIGINT, phase, outcome)

    def __str__(self) -> str:
        by = "" if self.signum == signal.SIGINT else f" by {signal.Signals(self.signum).name}"
        while_ = f" while {self.phase}" if self.phase else ""
        outcome = f"; {self.outcome}" if self.outcome else ""
        return f"Interrupted{by}{while_}{outcome}."


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """In the block, SIGTERM raises `Stopped(SIGTERM)` (as Ctrl-C raises KeyboardInterrupt) instead of ending
    the process on the spot with no message. Only the main thread can install a handler; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame) -> None:
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
