"""One run per run folder: `<folder>/run.lock`, taken before anything else is written there.

The lock is a JSON file `{"pid", "host", "started_at", "argv"}` created with O_EXCL (the shared
contract the UI reads), and removed when the run ends, however it ends (`with RunLock(...)`).
A second run into the same folder stops with `RunFolderInUse` naming the holder. A lock left by a
run that died without removing it (kill -9, power cut) is stale when it names this host and a
process that is no longer alive (or a newer process that reused its pid); it is taken over, and
`notice` says so. A lock from another host cannot be checked from here: it is reported as held.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import psutil

from toolkit.errors import RunFolderInUse
from toolkit.logging.run_status import utc_now

LOCK_FILE = "run.lock"
_READ_TRIES = 20  # another run may have created the file an instant ago and not yet written it
_READ_PAUSE_S = 0.05
_START_SLACK_S = 2.0  # process start times and the lock's timestamp come from different clocks' rounding


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started_at: str  # ISO-8601, UTC
    argv: list[str]

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started_at} ({' '.join(self.argv) or 'no command line'})"


class RunLock:
    """`with RunLock(run_folder) as lock:` holds `run_folder/run.lock` for the block; `lock.notice` is set
    when a stale lock was taken over."""

    def __init__(self, run_folder: Path) -> None:
        self.path = Path(run_folder) / LOCK_FILE
        self.holder = LockHolder(os.getpid(), socket.gethostname(), utc_now(), list(sys.argv))
        self.notice: str | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while not self._create():
            holder = _read(self.path)
            if holder is None:
                continue  # removed between our attempt and the read: try again
            if not _is_stale(holder):
                raise RunFolderInUse(
                    f"{self.path.parent} is in use by another run ({holder.describe()}); wait for it to end, or "
                    f"give this run another config.name or training_folder. If that run is gone (another machine "
                    f"that crashed), delete {self.path}."
                )
            if _read(self.path) == holder:  # still the same stale lock, not one a third run has just taken
                self.path.unlink(missing_ok=True)
                self.notice = f"took over {self.path}: the run that held it ({holder.describe()}) is no longer running"

    def release(self) -> None:
        """Remove the lock if it is still ours (a run never removes another run's lock)."""
        if _read(self.path, tries=1) == self.holder:
            self.path.unlink(missing_ok=True)

    def _create(self) -> bool:
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as handle:
            json.dump(asdict(self.holder), handle)
            handle.flush()
            os.fsync(handle.fileno())
        return True


def read_lock(run_folder: Path, tries: int = _READ_TRIES) -> LockHolder | None:
    """Who holds `run_folder`'s lock, or None when nobody does (for whatever watches run folders). A lock that
    stays unreadable for `tries` reads (one being written waits a moment) is a holder with pid -1."""
    return _read(Path(run_folder) / LOCK_FILE, tries)


def _read(path: Path, tries: int = _READ_TRIES) -> LockHolder | None:
    for attempt in range(tries):
        try:
            data = json.loads(path.read_text())
            return LockHolder(int(data["pid"]), str(data["host"]), str(data["started_at"]), list(data["argv"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            if attempt == tries - 1:
                return LockHolder(-1, "unknown", "unknown", [f"{path.name} unreadable: {error}"])
            time.sleep(_READ_PAUSE_S)
    return None


def _is_stale(holder: LockHolder) -> bool:
    """True when the holder ran on this host and is gone (or its pid now belongs to a process started later)."""
    if holder.host != socket.gethostname() or holder.pid <= 0:
        return False
    try:
        process = psutil.Process(holder.pid)
        started = datetime.fromisoformat(holder.started_at).timestamp()
        return process.create_time() > started + _START_SLACK_S
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError):  # no access to the process, or a start time we cannot read: assume alive
        return False
