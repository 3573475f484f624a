"""run.py's main() as a fault case runs it, reporting what it could not see from outside.

    python tests/faults/probe_run.py CONFIG [run.py options]

The last line on stderr is ``FAULT-PROBE {"job_started": ..., "torch_imported": ...}``:
whether any job began to run (a job's run is what loads models) and whether
torch was imported at all. INFO logging is on, so the trainer's lines reach
stderr. With FAULT_KILL_IN_SAVE=N the process kills itself (SIGKILL) in the
N-th checkpoint it writes, after the LoRA file and before the training state.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
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


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    _probe_job_runs()
    if os.environ.get("FAULT_KILL_IN_SAVE"):
        _kill_in_save(int(os.environ["FAULT_KILL_IN_SAVE"]))
    sys.argv[0] = "run.py"
    try:
        return run.main(sys.argv[1:])
    finally:
        probe = {"job_started": bool(_started), "torch_imported": "torch" in sys.modules}
        print(PROBE_PREFIX + json.dumps(probe), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
