"""Ctrl-C, then the same command again: the run resumes and ends with the LoRA an uninterrupted run ends with.

The interrupted run and its resume go through run.py in child processes, as a user runs them; the
uninterrupted reference is the same config run in this process (the LoRA does not depend on which
process trains it: test_trainer_learning.py's seed test, the data-parallel tests' single process).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.conftest import build_trainer, interrupt_when, run_cli, start_cli, write_config

STEPS = 30  # the first save is at step 10: Ctrl-C lands while 20 steps are left
NAME = "resume_test"


def _config(folder: Path) -> Path:
    return write_config(
        folder,
        {"train.steps": STEPS, "save.save_every": 5, "save.dtype": "float32", "train.lr": 1e-2},
        name=NAME,
    )


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_lora(tmp_path, tiny_ready):
    interrupted = _config(tmp_path / "interrupted")
    run_folder = tmp_path / "interrupted" / "output" / NAME
    first_save = run_folder / "checkpoints" / "step_000000010"

    process = start_cli([str(interrupted)], tmp_path / "first.log")
    interrupt_when(process, first_save.is_dir)
    assert process.wait(timeout=1800) == 130, (tmp_path / "first.log").read_text()[-3000:]
    first_log = (tmp_path / "first.log").read_text()
    stopped = re.search(r"Stopped by SIGINT at step (\d+)", first_log)
    assert stopped, first_log[-3000:]
    stopped_at = int(stopped.group(1))
    assert 10 <= stopped_at < STEPS
    assert (run_folder / "checkpoints" / f"step_{stopped_at:09d}" / "state.json").is_file()
    assert not (run_folder / f"{NAME}.safetensors").exists()

    resumed = run_cli([str(interrupted)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming {NAME} from step {stopped_at}" in resumed.stdout + resumed.stderr

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
