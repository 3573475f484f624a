"""`status.json` in a run folder: whether the run is going, how far it got, and how it ended.

    {"state": "running" | "finished" | "stopped" | "failed", "step": int, "steps": int,
     "started_at": ISO-8601 UTC, "ended_at": ISO-8601 UTC | null, "pid": int,
     "exit_code": int | null, "error": str | null}

The trainer writes it atomically at start, on each save and at the end (`RunStatusFile`); the web
UI and a user's scripts read it (`read_run_status`). A run killed without a chance to write its
end leaves `running` with a pid that is no longer alive: readers check the pid. The exit codes
are run.py's: 0 finished, 130 stopped by Ctrl-C (SIGINT), 143 stopped by SIGTERM, 2 a config error, 1 anything else.
Plain Python, no torch: the UI reads it without loading any training code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from toolkit.atomic_write import atomic_write
from toolkit.errors import ConfigError, ToolkitError

STATUS_FILE = "status.json"
STATES = ("running", "finished", "stopped", "failed")
EXIT_FINISHED, EXIT_FAILED, EXIT_CONFIG_ERROR, EXIT_STOPPED = 0, 1, 2, 130
EXIT_TERMINATED = 143
STOPPED_EXIT_CODES = (EXIT_STOPPED, EXIT_TERMINATED)


def utc_now() -> str:
    """The current time as ISO-8601 UTC with milliseconds, as every shared run file writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunStatusError(ToolkitError):
    """A run folder's status.json cannot be read as a run status."""


@dataclass
class RunStatus:
    state: str
    step: int
    steps: int
    started_at: str
    ended_at: str | None
    pid: int
    exit_code: int | None
    error: str | None


def read_run_status(run_folder: Path) -> RunStatus | None:
    """The run's status.json, or None when the run never wrote one (older runs) or it is not a status file."""
    path = Path(run_folder) / STATUS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        status = RunStatus(**{name: data[name] for name in RunStatus.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise RunStatusError(f"{path}: not a run status file ({error}); delete it, the run folder has the rest") from error
    if status.state not in STATES:
        raise RunStatusError(f"{path}: state {status.state!r} is not one of {', '.join(STATES)}")
    return status


class RunStatusFile:
    """Writes one run's status.json; only the process that owns the run folder makes one (rank 0)."""

    def __init__(self, run_folder: Path, steps: int, step: int = 0) -> None:
        self.path = Path(run_folder) / STATUS_FILE
        self.status = RunStatus("running", step, steps, utc_now(), None, os.getpid(), None, None)

    def update(self, step: int) -> None:
        """A save happened at `step`."""
        self.status.step = step
        self._write()

    def end(self, state: str, step: int, exit_code: int, error: str | None = None) -> None:
        self.status.state, self.status.step, self.status.exit_code = state, step, exit_code
        self.status.ended_at, self.status.error = utc_now(), error
        self._write()

    @contextmanager
    def recording(self, current_step: Callable[[], int]) -> Iterator[RunStatusFile]:
        """`running` now; `finished`, `stopped` (Ctrl-C) or `failed` (any error, with its first line) at the end."""
        self._write()
        try:
            yield self
        except KeyboardInterrupt as interrupt:  # toolkit.stopping.Stopped knows its signal's code (143 for SIGTERM)
            self.end("stopped", current_step(), getattr(interrupt, "exit_code", EXIT_STOPPED))
            raise
        except BaseException as error:
            code = EXIT_CONFIG_ERROR if isinstance(error, ConfigError) else EXIT_FAILED
            self.end("failed", current_step(), code, _first_line(error))
            raise
        self.end("finished", current_step(), EXIT_FINISHED)

    def _write(self) -> None:
        with atomic_write(self.path, durable=False) as temporary:  # rewritten at every save; a crash loses nothing
            temporary.write_text(json.dumps(asdict(self.status)), encoding="utf-8")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
