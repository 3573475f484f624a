"""A save that dies half-way leaves the previous checkpoint intact, and resume never picks the half-written one.

A process killed (SIGKILL) in the middle of a save, then the same config run again, is
tests/faults/test_faults_runtime.py's kill -9 case.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from extensions_built_in.sd_trainer import checkpoints
from tests.trainer.conftest import lora_tensors, set_up_trainer, train_steps, write_config

NAME = "save_failure"


def _config(folder: Path) -> Path:
    return write_config(folder, {"train.steps": 8, "train.lr": 1e-2, "save.dtype": "float32"}, name=NAME)


def _check_step_2_survived(run_folder: Path, saved_lora: dict[str, torch.Tensor]) -> None:
    step_2 = run_folder / "checkpoints" / "step_000000002"
    assert checkpoints.latest_checkpoint(run_folder) == step_2
    assert not (run_folder / "checkpoints" / "step_000000004").exists()
    assert sorted(p.name for p in step_2.iterdir()) == ["config.yaml", "lora.safetensors", "state.json", "training_state.pt"]
    state = checkpoints.load_training_state(step_2)
    assert state.step == 2
    assert set(state.lora_state) == set(saved_lora)
    for name, tensor in saved_lora.items():
        assert torch.equal(state.lora_state[name], tensor), name
    assert state.optimizer_state["state"]  # Adam moments of 2 steps


def _check_resume_then_save(config: Path, run_folder: Path, saved_lora: dict[str, torch.Tensor]) -> None:
    trainer = set_up_trainer(config)
    assert trainer.step == 2
    for name, tensor in lora_tensors(trainer).items():
        assert torch.equal(tensor, saved_lora[name]), name
    train_steps(trainer, 2)
    trainer.save()
    assert checkpoints.latest_checkpoint(run_folder) == run_folder / "checkpoints" / "step_000000004"
    assert not list((run_folder / "checkpoints").glob(".*partial"))


def _fail_torch_save(monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)


def _fail_folder_rename(monkeypatch):
    real_replace = os.replace

    def rename_fails_for_folders(source, destination):
        if Path(source).is_dir():
            raise OSError(5, "Input/output error")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", rename_fails_for_folders)


@pytest.mark.parametrize("failure", [_fail_torch_save, _fail_folder_rename], ids=["optimizer_state", "final_rename"])
def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure):
    config = _config(tmp_path)
    run_folder = tmp_path / "output" / NAME
    trainer = set_up_trainer(config)
    train_steps(trainer, 2)
    trainer.save()
    saved_lora = lora_tensors(trainer)
    train_steps(trainer, 2)
    with monkeypatch.context() as patch:
        failure(patch)
        with pytest.raises(OSError):
            trainer.save()
    assert (run_folder / "checkpoints" / ".step_000000004.partial").is_dir()  # what the failed save left
    _check_step_2_survived(run_folder, saved_lora)
    _check_resume_then_save(config, run_folder, saved_lora)
