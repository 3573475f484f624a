"""Fault suite, signals: Ctrl-C and SIGTERM end a run in one line with exit 130 / 143, in every phase.

The child-process case sends SIGTERM while the trainer encodes its clips (the phase that used to
die with -15 and no word); the in-process cases deliver each signal to this process inside each
phase the trainer marks, through the same RunGuard and handler run.py installs. The graceful stop
during training (finish the step, save, exit 143) is tests/trainer/test_trainer_resume.py's.
"""

from __future__ import annotations

import os
import signal

import pytest

from extensions_built_in.sd_trainer.run_guard import RunGuard
from tests.faults.conftest import copy_trained, run_probe, write_yaml
from tests.faults.test_faults_resume import SAVES, _files
from toolkit.stopping import Stopped, sigterm_stops


@pytest.mark.slow
def test_sigterm_while_encoding_the_clips_is_one_line_and_exit_143(trained_run, tmp_path) -> None:
    job, run_folder = copy_trained(trained_run, tmp_path)
    job["config"]["process"][0]["train"]["steps"] = 6
    before = _files(run_folder / "checkpoints")
    outcome = run_probe([str(write_yaml(tmp_path / "job.yaml", job))], cwd=tmp_path, env={"FAULT_SIGNAL_IN": "encoding"})
    assert outcome.returncode == 143, outcome.output[-3000:]
    assert outcome.stderr.strip().splitlines()[-2] == (
        f"Interrupted by SIGTERM while encoding and caching the clips; the last save, "
        f"{run_folder / 'checkpoints' / SAVES[1]} (step 4), is intact: run the same config again to resume from it."
    )
    assert "Traceback" not in outcome.output
    assert outcome.probe == {"job_started": True, "torch_imported": True}  # it got as far as the clips
    assert _files(run_folder / "checkpoints") == before
    assert not (run_folder / "run.lock").exists()


PHASES = ["starting the run", "loading the model", "encoding and caching the clips", "training", "saving step 6",
          "sampling at step 6"]


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", PHASES)
def test_a_signal_in_any_phase_names_the_phase_and_the_last_save(phase, signum, exit_code, trained_run, tmp_path):
    _, run_folder = copy_trained(trained_run, tmp_path)
    guard = RunGuard(run_folder)
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as raised, sigterm_stops(), guard.reporting(), guard.during(phase):
        os.kill(os.getpid(), signum)  # its handler runs before the next line: inside the phase
        pytest.fail("the signal did not stop the block")
    stopped = raised.value
    assert stopped.exit_code == exit_code
    by = "" if signum == signal.SIGINT else " by SIGTERM"
    assert str(stopped) == (
        f"Interrupted{by} while {phase}; the last save, {run_folder / 'checkpoints' / SAVES[1]} (step 4), is intact: "
        "run the same config again to resume from it."
    )
    assert signal.getsignal(signal.SIGTERM) == handler_before  # run.py's handler lives only as long as the run
