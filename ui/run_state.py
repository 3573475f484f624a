"""One line of the runs list: a run's state, progress, speed and times, from its folder and the UI's launches.

Where the state comes from, first match wins:
1. the UI's launch: queued, or a live process it started (running; stopping once a stop was sent);
2. status.json (written by the trainer): `running` is believed only while its pid is alive and is
   the same process (created before the status was written); a dead one is `failed`, or `stopped`
   when the UI saw that process exit with 130 (Ctrl-C) or 143 (SIGTERM);
3. run.lock (another branch's run lock) held by a live process on this host: running;
4. runs that wrote no status.json (older runs, or a run.py that failed before the trainer began):
   the exit code the UI saw, else a final LoRA (finished), an error line in the logs (failed),
   or a checkpoint to resume from (stopped).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from toolkit.logging.run_status import EXIT_FINISHED, STOPPED_EXIT_CODES, RunStatus, RunStatusError, read_run_status
from toolkit.run_lock import LockHolder

from .folders import Folders, is_plain_name
from .jobs import Launch, Launches
from .metrics import progress, read_recent_metrics
from .processes import alive_since, alive_since_iso
from .run_folder import job_file, last_error_line, read_config, read_lock, save_folders

ACTIVE = ("queued", "running", "stopping")


@dataclass
class RunSummary:
    training_folder: int
    name: str
    folder: Path
    state: str  # queued, running, stopping, finished, stopped, failed, created
    error: str | None
    step: int | None
    steps: int | None
    steps_per_second: float | None
    eta_seconds: float | None
    last_loss: float | None
    started_at: str | None
    ended_at: str | None
    started_by: str  # "ui" or "command line"
    pid: int | None  # the process to stop, while it runs
    device: str | None

    @property
    def url(self) -> str:
        return f"/runs/{self.training_folder}/{self.name}"

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.step / self.steps) if self.step is not None and self.steps else None

    def as_json(self) -> dict:
        values = asdict(self)
        values["folder"] = str(self.folder)
        values["url"] = self.url
        return values


def run_folders(folders: Folders) -> Iterator[tuple[int, Path]]:
    """(training folder index, run folder) of every run folder: the plain-named folders directly inside."""
    for index, base in enumerate(folders.training):
        if not base.is_dir():
            continue
        for folder in base.iterdir():
            if is_plain_name(folder.name) and folder.is_dir() and folder.resolve().parent == base:
                yield index, folder


def list_runs(folders: Folders, launches: Launches) -> list[RunSummary]:
    """Every run folder of every training folder: active ones first, then the most recently started."""
    runs = [summarize(index, folder, launches) for index, folder in run_folders(folders)]
    return sorted(runs, key=lambda run: (run.state not in ACTIVE, -_recency(run), run.name))


def command_line_run_running(folder: Path) -> bool:
    """Whether a run the UI never launched is running now (its status.json or run.lock held by a live process):
    `summarize`'s state without the metrics, checkpoints and config it also reads."""
    try:
        status = read_run_status(folder)
    except RunStatusError:
        status = None
    return infer_state(folder, status, read_lock(folder), None)[0] == "running"


def _recency(run: RunSummary) -> float:
    """When the run last started (status.json, run.lock or the launch), else when its folder last changed."""
    if run.started_at:
        try:
            return datetime.fromisoformat(run.started_at).timestamp()
        except ValueError:
            pass  # a foreign stamp: the folder's time below
    return run.folder.stat().st_mtime


def summarize(index: int, folder: Path, launches: Launches) -> RunSummary:
    launch = launches.latest(folder)
    try:
        status, status_problem = read_run_status(folder), None
    except RunStatusError as error:
        status, status_problem = None, str(error)
    lock = read_lock(folder)
    recent = progress(read_recent_metrics(folder))
    saved = save_folders(folder)
    config = read_config(folder)
    state, error = infer_state(folder, status, lock, launch)
    steps = status.steps if status else (config.steps if config else None)
    step = max(
        [value for value in (status.step if status else None, _next(recent.last_step), saved[-1][0] if saved else None) if value is not None],
        default=None,
    )
    if state == "finished" and steps is not None:
        step = steps
    running = state in ("running", "stopping")
    speed = recent.steps_per_second if running else None
    eta = (steps - step) / speed if running and speed and steps is not None and step is not None else None
    return RunSummary(
        training_folder=index,
        name=folder.name,
        folder=folder,
        state=state,
        error=error or status_problem,
        step=step,
        steps=steps,
        steps_per_second=speed,
        eta_seconds=eta,
        last_loss=recent.last_loss,
        started_at=(status.started_at if status else None) or (lock.started_at if lock else None) or (launch.started_at if launch else None),
        ended_at=None if running or state == "queued" else ((status.ended_at if status else None) or (launch.ended_at if launch else None)),
        started_by="ui" if launch is not None else "command line",
        pid=_running_pid(state, status, lock, launch),
        device=launch.device if launch else (config.device if config else None),
    )


def _next(step: int | None) -> int | None:
    """Steps done after logging step index `step` (metrics count from 0)."""
    return None if step is None else step + 1


def infer_state(folder: Path, status: RunStatus | None, lock: LockHolder | None, launch: Launch | None) -> tuple[str, str | None]:
    """(state, error line) of a run; see the module docstring for the order."""
    if launch is not None and launch.state == "queued":
        return "queued", None
    if launch is not None and launch.state == "running" and launch_alive(launch):
        return ("stopping" if launch.stop_requested_at else "running"), None
    newer_launch = launch is not None and launch.state == "ended" and (
        status is None or (launch.started_at or "") > status.started_at
    )
    if status is not None and status.state == "running" and not newer_launch:
        if alive_since_iso(status.pid, status.started_at):
            return "running", None
        if launch is not None and launch.exit_code in STOPPED_EXIT_CODES:
            return "stopped", None
        return "failed", f"process {status.pid} ended without recording how it ended (killed, or the machine restarted)"
    if lock is not None and lock_alive(lock):
        return "running", None
    if newer_launch:
        return _from_exit_code(folder, launch.exit_code)
    if status is not None:
        return status.state, status.error
    if launch is not None and launch.state == "cancelled":
        return "created", "taken out of the queue before it started"
    if (folder / f"{folder.name}.safetensors").is_file():  # the final LoRA: <config.name>.safetensors
        return "finished", None
    error = last_error_line(folder)
    if error:
        return "failed", error
    if save_folders(folder):
        return "stopped", None
    if job_file(folder) is not None:
        return "created", None
    return "stopped", "no end recorded"


def _from_exit_code(folder: Path, code: int | None) -> tuple[str, str | None]:
    if code == EXIT_FINISHED:
        return "finished", None
    if code in STOPPED_EXIT_CODES:
        return "stopped", None
    return "failed", last_error_line(folder) or f"run.py exited with code {code}"


def launch_alive(launch: Launch) -> bool:
    return launch.pid is not None and launch.pid_created is not None and alive_since(launch.pid, launch.pid_created)


def lock_alive(lock: LockHolder) -> bool:
    """A lock held by a live process; a lock from another host cannot be checked and counts as held."""
    if lock.host != socket.gethostname():
        return True
    return alive_since_iso(lock.pid, lock.started_at)


def _running_pid(state: str, status: RunStatus | None, lock: LockHolder | None, launch: Launch | None) -> int | None:
    if state not in ("running", "stopping"):
        return None
    if launch is not None and launch.state == "running" and launch.pid is not None:
        return launch.pid
    if status is not None and status.state == "running":
        return status.pid
    return lock.pid if lock is not None else None
