"""run.py's main() as a fault case runs it, reporting what it could not see from outside.

    python tests/faults/probe_run.py CONFIG [run.py options]

The last line on stderr is ``FAULT-PROBE {"job_started": ..., "torch_imported": ...}``:
whether any job began to run (a job's run is what loads models) and whether
torch was imported at all. INFO logging is on, so the trainer's lines reach
stderr. With FAULT_KILL_IN_SAVE=N the process kills itself (SIGKILL) in the
N-th checkpoint it writes, after the LoRA file and before the training state.
With FAULT_DISK_FULL_AT=TEXT every write to a file whose path holds TEXT fails as
on a full disk (OSError ENOSPC from write(), without a file name, as the system
reports it). With FAULT_SIGNAL_IN=PHASE the process sends itself SIGTERM as the
trainer enters the phase whose name starts with PHASE ("loading", "encoding",
"saving", ...).
"""

from __future__ import annotations

import builtins
import errno
import json
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import run  # noqa: E402
from toolkit.job import Job  # noqa: E402

PROBE_PREFIX = "FAULT-PROBE "
_started: list[str] = []


def _probe_job_runs() -> None:
    original = Job.run

    def probed(self: Job) -> None:
        _started.append(str(self.config_path))
        original(self)

    Job.run = probed  # type: ignore[method-assign]


def _kill_in_save(count: int) -> None:
    import torch

    original = torch.save
    saves: list[str] = []

    def save(obj, destination, *args, **kwargs):
        if "checkpoints" in str(destination):
            saves.append(str(destination))
            if len(saves) == count:
                os.kill(os.getpid(), signal.SIGKILL)
        return original(obj, destination, *args, **kwargs)

    torch.save = save


class _FullDisk:
    """An open file whose writes fail as on a full disk."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def __enter__(self) -> "_FullDisk":
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


def open_on_a_full_disk_at(fragment: str, real_open=builtins.open):
    """`open` as on a disk that is full for the files whose path holds `fragment` (FAULT_DISK_FULL_AT; a test
    that runs run.main in its own process sets it as builtins.open for the run)."""

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        writing = any(flag in mode for flag in "wax+")
        return _FullDisk(handle) if writing and fragment in str(file) else handle

    return open_on_a_full_disk


def _disk_full_at(fragment: str) -> None:
    builtins.open = open_on_a_full_disk_at(fragment)


def _signal_in_phase(prefix: str) -> None:
    from extensions_built_in.sd_trainer.run_guard import RunGuard

    original = RunGuard.during

    @contextmanager
    def during(self, phase: str):
        with original(self, phase):
            if phase.startswith(prefix):
                os.kill(os.getpid(), signal.SIGTERM)
            yield

    RunGuard.during = during  # type: ignore[method-assign]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    _probe_job_runs()
    if os.environ.get("FAULT_KILL_IN_SAVE"):
        _kill_in_save(int(os.environ["FAULT_KILL_IN_SAVE"]))
    if os.environ.get("FAULT_DISK_FULL_AT"):
        _disk_full_at(os.environ["FAULT_DISK_FULL_AT"])
    if os.environ.get("FAULT_SIGNAL_IN"):
        _signal_in_phase(os.environ["FAULT_SIGNAL_IN"])
    sys.argv[0] = "run.py"
    try:
        return run.main(sys.argv[1:], freeze_imports=True)  # as the command line
    finally:
        probe = {"job_started": bool(_started), "torch_imported": "torch" in sys.modules}
        print(PROBE_PREFIX + json.dumps(probe), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
