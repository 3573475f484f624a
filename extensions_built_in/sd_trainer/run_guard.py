"""How a run ends when a signal or the file system stops it: one line saying what it was doing and what is saved.

`RunGuard.during(phase)` marks the phases (loading the model, caching, training, saving, sampling);
`RunGuard.reporting()` wraps the whole run and turns Ctrl-C / SIGTERM into toolkit.stopping.Stopped
(exit 130 / 143) and a full disk, read-only folder, missing permission or too-long name into a
FileSystemError (exit 1), each naming the phase and the last good save.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from toolkit.file_errors import file_system_errors
from toolkit.stopping import Stopped

from .checkpoints import latest_checkpoint, saved_step


class RunGuard:
    def __init__(self, run_folder: Path) -> None:
        self.run_folder = run_folder
        self.phase = "starting the run"

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        """The block is `phase`; the phase before it is restored when the block ends normally only, so an
        error or a signal is reported with the phase it happened in."""
        previous, self.phase = self.phase, phase
        yield
        self.phase = previous

    @contextmanager
    def reporting(self) -> Iterator[None]:
        try:
            with file_system_errors(lambda: self.phase, self.how_to_go_on):
                yield
        except KeyboardInterrupt as interrupt:
            raise Stopped.from_interrupt(interrupt, self.phase, self.how_to_go_on()) from None

    def saved(self) -> str:
        """What is saved now: the last save, or that there is none."""
        latest = latest_checkpoint(self.run_folder)
        if latest is None:
            return "nothing was saved yet"
        return f"the last save, {latest} (step {saved_step(latest)}), is intact"

    def how_to_go_on(self, advice: str | None = None) -> str:
        """What is saved and how to go on from it, after doing `advice` ("free some space") when there is one."""
        saved = self.saved()
        again = "run the same config again" + ("" if saved.startswith("nothing") else " to resume from it")
        text = f"{saved}: {advice + ', then ' if advice else ''}{again}"
        return text[0].upper() + text[1:] if advice else text
