"""SIGTERM (what `kill`, a scheduler or a container stop sends), then the same command again: the run finishes
the step, saves, exits 143 naming the save, and the resume ends with the LoRA an uninterrupted run ends with.

The interrupted run goes through run.py in a child process, as a user runs it (the signal reaches a real
process mid-training); the resume is run.py's main() in this process, and so is the uninterrupted reference
(the LoRA does not depend on which process trains it: test_trainer_learning.py's seed test, the data-parallel
tests' single process). Ctrl-C's own graceful stop in a real process is the UI's Stop (SIGINT to the run's
process group, tests/ui/test_ui_browser.py), and both signals in every phase are tests/faults/test_faults_signals.py's.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.faults.conftest import run_here
from tests.trainer.conftest import build_trainer, interrupt_when, start_cli, write_config

STEPS = 30  # the first save is at step 10: the signal lands while 20 steps are left
NAME = "resume_test"


def _config(folder: Path) -> Path:
    return write_config(
        folder,
        {"train.steps": STEPS, "save.save_every": 5, "save.dtype": "float32", "train.lr": 1e-2},
        name=NAME,
    )


@pytest.mark.slow
def test_sigterm_saves_exits_143_and_the_same_command_resumes_to_the_same_lora(tmp_path, tiny_ready, capsys):
    interrupted = _config(tmp_path / "interrupted")
    run_folder = tmp_path / "interrupted" / "output" / NAME
    first_save = run_folder / "checkpoints" / "step_000000010"

    process = start_cli([str(interrupted)], tmp_path / "first.log")
    interrupt_when(process, first_save.is_dir, signum=signal.SIGTERM)
    code = process.wait(timeout=1800)
    first_log = (tmp_path / "first.log").read_text()
    assert code == 143, first_log[-3000:]
    stopped = re.search(r"Stopped by SIGTERM at step (\d+)", first_log)
    assert stopped, first_log[-3000:]
    stopped_at = int(stopped.group(1))
    assert 10 <= stopped_at < STEPS
    save = run_folder / "checkpoints" / f"step_{stopped_at:09d}"
    assert (save / "state.json").is_file()
    assert first_log.strip().splitlines()[-1] == (
        f"Interrupted by SIGTERM while training; the last save, {save} (step {stopped_at}), is intact: run the same "
        "config again to resume from it."
    )
    assert "Traceback" not in first_log
    assert not (run_folder / f"{NAME}.safetensors").exists()
    assert not (run_folder / "run.lock").exists()

    resumed = run_here([str(interrupted)], capsys)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming {NAME} from step {stopped_at}" in (run_folder / "train.log").read_text()

    reference = build_trainer(_config(tmp_path / "uninterrupted"))
    reference.run()
    assert reference.step == STEPS

    resumed_lora = load_file(run_folder / f"{NAME}.safetensors")
    reference_lora = load_file(tmp_path / "uninterrupted" / "output" / NAME / f"{NAME}.safetensors")
    assert set(resumed_lora) == set(reference_lora)
    for key, tensor in reference_lora.items():
        assert tensor.dtype == torch.float32
        torch.testing.assert_close(resumed_lora[key], tensor, rtol=1e-5, atol=1e-7)
    # the LoRA moved away from its start, so equality is not trivially two untrained files
    assert max(t.abs().max() for k, t in reference_lora.items() if "lora_B" in k) > 1e-2
