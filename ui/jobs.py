"""The UI's SQLite database: the job queue and every run.py process the UI started (a "launch").

The run folders stay the source of truth: a launch only adds what a folder cannot say (queue
order, the process group to stop, the exit code the UI saw). Deleting the database loses nothing:
at start the UI queues again every run folder that holds a job.yaml and never started
(`Launches.requeue_unstarted`), and everything else is read from the folders.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from toolkit.logging.run_status import utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS launches (
    id INTEGER PRIMARY KEY,
    run_folder TEXT NOT NULL,
    config_path TEXT NOT NULL,
    extra_args TEXT NOT NULL DEFAULT '[]',
    device TEXT NOT NULL,
    alongside INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ended', 'cancelled')),
    queued_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    pid INTEGER,
    pid_created REAL,
    exit_code INTEGER,
    stop_requested_at TEXT
);
CREATE INDEX IF NOT EXISTS launches_by_folder ON launches (run_folder, id);
"""


@dataclass(frozen=True)
class Launch:
    """One queued or started `run.py CONFIG EXTRA_ARGS` for a run folder."""

    id: int
    run_folder: Path
    config_path: Path
    extra_args: list[str]
    device: str
    alongside: bool  # start without waiting for the device to be free
    state: str  # queued, running, ended, cancelled
    queued_at: str
    started_at: str | None
    ended_at: str | None
    pid: int | None
    pid_created: float | None
    exit_code: int | None
    stop_requested_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Launch:
        values = dict(row)
        values["run_folder"], values["config_path"] = Path(values["run_folder"]), Path(values["config_path"])
        values["extra_args"] = json.loads(values["extra_args"])
        values["alongside"] = bool(values["alongside"])
        return cls(**values)


def device_key(device: str | None) -> str:
    """The queue a job waits in: one per device; `cuda` is `cuda:0`."""
    device = (device or "cpu").strip().lower()
    return "cuda:0" if device == "cuda" else device


class Launches:
    """The launches table; safe to use from the server's threads (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, *args) -> list[Launch]:
        with self._lock:
            return [Launch.from_row(row) for row in self._db.execute(sql, args).fetchall()]

    def _change(self, sql: str, *args) -> int:
        with self._lock:
            return self._db.execute(sql, args).lastrowid

    def queue(self, run_folder: Path, config_path: Path, device: str, extra_args: list[str] = (), alongside: bool = False) -> int:
        return self._change(
            "INSERT INTO launches (run_folder, config_path, extra_args, device, alongside, state, queued_at) "
            "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
            str(run_folder), str(config_path), json.dumps(list(extra_args)), device_key(device), int(alongside), utc_now(),
        )

    def latest(self, run_folder: Path) -> Launch | None:
        """The newest launch of a run folder, or None when the UI never queued it."""
        found = self._query("SELECT * FROM launches WHERE run_folder = ? ORDER BY id DESC LIMIT 1", str(run_folder))
        return found[0] if found else None

    def of_run(self, run_folder: Path) -> list[Launch]:
        return self._query("SELECT * FROM launches WHERE run_folder = ? ORDER BY id", str(run_folder))

    def in_state(self, state: str) -> list[Launch]:
        """Launches in `state`, oldest first (for `queued`: the queue order)."""
        return self._query("SELECT * FROM launches WHERE state = ? ORDER BY id", state)

    def mark_started(self, launch_id: int, pid: int, pid_created: float) -> None:
        self._change(
            "UPDATE launches SET state = 'running', started_at = ?, pid = ?, pid_created = ? WHERE id = ?",
            utc_now(), pid, pid_created, launch_id,
        )

    def mark_ended(self, launch_id: int, exit_code: int | None) -> None:
        self._change(
            "UPDATE launches SET state = 'ended', ended_at = ?, exit_code = ? WHERE id = ? AND state = 'running'",
            utc_now(), exit_code, launch_id,
        )

    def mark_stop_requested(self, launch_id: int) -> None:
        self._change("UPDATE launches SET stop_requested_at = ? WHERE id = ?", utc_now(), launch_id)

    def cancel(self, launch_id: int) -> bool:
        """Take a queued launch out of the queue; False when it already started."""
        with self._lock:
            cursor = self._db.execute("UPDATE launches SET state = 'cancelled' WHERE id = ? AND state = 'queued'", (launch_id,))
            return cursor.rowcount == 1

    def forget_run(self, run_folder: Path) -> None:
        """Drop every launch of a deleted run folder."""
        self._change("DELETE FROM launches WHERE run_folder = ?", str(run_folder))

    def requeue_unstarted(self, job_files: list[tuple[Path, str]]) -> int:
        """Queue each (job.yaml, device) whose run folder has no launch: a queue lost with an old database."""
        queued = 0
        for job_file, device in job_files:
            if self.latest(job_file.parent) is None:
                self.queue(job_file.parent, job_file, device)
                queued += 1
        return queued
