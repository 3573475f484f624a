"""The run.py processes the UI starts and signals, and how it tells that a pid is still the same process.

A job runs as `python run.py CONFIG` in a session (and process group) of its own, so closing the UI
(or Ctrl-C in its terminal) never reaches it and a stop reaches run.py and whatever it started. A
pid is only signalled after checking it is the process that was recorded: alive, not a zombie, and
created no later than the moment it was recorded (a recycled pid belongs to a younger process).
No command is ever built as a shell string: the argument list goes to the OS as it is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import psutil

from toolkit.errors import ToolkitError

RUN_PY = Path(__file__).resolve().parent.parent / "run.py"
CLOCK_SLACK_S = 2.0  # create times and ISO stamps come from different clocks' roundings


class ProcessGone(ToolkitError):
    """The process to signal has ended, or its pid now belongs to another process."""


def created_at(pid: int) -> float | None:
    """When process `pid` was created (unix time), or None when there is no such live process."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def alive_since(pid: int, recorded: float) -> bool:
    """Whether `pid` is alive and is the process recorded at unix time `recorded` (created by then)."""
    created = created_at(pid)
    return created is not None and created <= recorded + CLOCK_SLACK_S


def alive_since_iso(pid: int, recorded: str) -> bool:
    """`alive_since` for an ISO-8601 time as status.json and run.lock write it."""
    try:
        moment = datetime.fromisoformat(recorded).timestamp()
    except (TypeError, ValueError):
        return False
    return alive_since(pid, moment)


def start_run(config: Path, extra_args: list[str], cwd: Path, log_path: Path) -> subprocess.Popen:
    """`python run.py CONFIG ARGS...` in its own session; stdout and stderr appended to `log_path`."""
    command = [sys.executable, str(RUN_PY), str(config), *extra_args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log_path.open("ab") as log:
        log.write(f"\n=== started by the UI: {' '.join(command)} (in {cwd}) ===\n".encode())
        log.flush()
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def interrupt_group(pid: int, created: float) -> None:
    """SIGINT (the trainer's Ctrl-C: finish the step, save, stop) to the process group the UI started."""
    if not alive_since(pid, created):
        raise ProcessGone(f"process {pid} has already ended")
    os.killpg(pid, signal.SIGINT)


def interrupt(pid: int, recorded_at: str) -> None:
    """SIGINT to a run started elsewhere (the command line), after checking `pid` is still that run."""
    if not alive_since_iso(pid, recorded_at):
        raise ProcessGone(f"process {pid} is not the run that started at {recorded_at} (it ended)")
    os.kill(pid, signal.SIGINT)
