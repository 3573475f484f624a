"""Fault suite, resume: a changed config, damaged saves, and a save that does not read back.

The cases share one trained run (`trained_run`: saves at steps 2 and 4) and copy it. What a
resume cannot take is found before loading, so those cases run run.py's main() in this process;
so does the whole resume of one case: the newest save damaged, settings a resume can take changed,
and the disk full at the next save.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import run
from extensions_built_in.sd_trainer import checkpoints
from tests.faults.conftest import copy_trained, run_here, write_yaml
from toolkit.errors import CheckpointError

SAVES = ["step_000000002", "step_000000004"]


def _files(run_folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(run_folder)): path.read_bytes() for path in sorted(run_folder.rglob("*")) if path.is_file()}


def _process(job: dict) -> dict:
    return job["config"]["process"][0]


BLOCKING = {
    "rank": (lambda p: p["network"].update(linear=8), "network.linear: 4 in the run saved at step 4, 8 now"),
    "alpha": (lambda p: p["network"].update(linear_alpha=1), "network.linear_alpha: 4.0 in the run saved at step 4, 1.0"),
    "targets": (lambda p: p["network"].update(target_modules=["to_q"]), 'network.target_modules: null in the run saved'),
    "optimizer": (lambda p: p["train"].update(optimizer="prodigy", lr=1.0), 'train.optimizer: "adamw" in the run saved'),
    "optimizer_settings": (
        lambda p: p["train"].update(optimizer_params={"betas": [0.8, 0.9]}), "train.optimizer_params: {} in the run saved"
    ),
    "model": (lambda p: p["model"].update(arch="ltx2.3", name_or_path="tiny-ltx2.3"), 'model.arch: "ltx2" in the run saved'),
}


@pytest.mark.parametrize("change", BLOCKING, ids=list(BLOCKING))
def test_a_change_a_resume_cannot_take_stops_before_loading(change, trained_run, tmp_path, capsys) -> None:
    job, run_folder = copy_trained(trained_run, tmp_path)
    before = _files(run_folder)
    edit, expected = BLOCKING[change]
    edit(_process(job))
    assert run.main([str(write_yaml(tmp_path / "job.yaml", job))]) == 2
    error = capsys.readouterr().err
    assert f"config.process[0].{expected}" in error, error
    assert "a resume cannot take this change" in error and "Traceback" not in error
    assert f"config.name: {run_folder} holds that run (step_000000004); set the values above back" in error
    assert "or start a new run under another config.name" in error
    assert _files(run_folder) == before  # nothing written, no lock left


def test_every_change_a_resume_cannot_take_is_listed_in_one_message(trained_run, tmp_path, capsys) -> None:
    job, run_folder = copy_trained(trained_run, tmp_path)
    process = _process(job)
    process["network"].update(linear=8, linear_alpha=8)
    process["train"].update(optimizer="prodigy", lr=1.0, steps=8)  # steps and lr alone would resume
    assert run.main([str(write_yaml(tmp_path / "job.yaml", job))]) == 2
    lines = [line.strip() for line in capsys.readouterr().err.splitlines() if line.strip().startswith("- ")]
    keys = [line.split(":")[0] for line in lines]
    assert keys == [
        "- config.process[0].network.linear",
        "- config.process[0].network.linear_alpha",
        "- config.process[0].train.optimizer",
        "- config.name",
    ]


def test_changes_a_resume_can_take_are_no_error(trained_run, tmp_path) -> None:
    from extensions_built_in.sd_trainer.resume_check import newest_whole_save, setting_changes
    from toolkit.config import load_config
    from toolkit.preflight import problems_before_loading

    job, run_folder = copy_trained(trained_run, tmp_path)
    process = _process(job)
    process["train"].update(steps=6, lr=5e-4)
    process["datasets"].append({"folder_path": str(trained_run / "clips"), "num_frames": 9, "resolution": [32]})
    config = load_config(write_yaml(tmp_path / "job.yaml", job))
    assert problems_before_loading(config) == []
    trainer_config = config.config.process[0]
    saved = newest_whole_save(run_folder, "sd_trainer", trainer_config.training_folder)
    changes = [change.describe() for change in setting_changes(saved.process, trainer_config.model_dump(mode="json"))]
    assert changes == [
        f"datasets[1]: (none) -> dataset {trained_run / 'clips'}",
        "train.steps: 4 -> 6",
        "train.lr: 0.001 -> 0.0005",
    ]


def _truncate_lora(save: Path) -> str:
    lora = save / "lora.safetensors"
    lora.write_bytes(lora.read_bytes()[:-64])
    return "lora.safetensors holds"


def _empty_training_state(save: Path) -> str:
    (save / "training_state.pt").write_bytes(b"")
    return "training_state.pt is not a whole torch.save archive"


def _flipped_byte(save: Path) -> str:
    """One bit of rot in the largest tensor's bytes (an optimizer moment): the file's size and structure stay."""
    state = save / "training_state.pt"
    with zipfile.ZipFile(state) as archive:
        largest = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(state.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[largest.header_offset + 26 : largest.header_offset + 30])
    data[largest.header_offset + 30 + name_length + extra_length + largest.file_size // 2] ^= 0x01
    state.write_bytes(bytes(data))
    return f"training_state.pt: its member {largest.filename} fails its CRC check"


def _garbled_state_json(save: Path) -> str:
    (save / "state.json").write_text('{"step": ')
    return "state.json is unreadable"


DAMAGE = {"truncated_lora": _truncate_lora, "empty_training_state": _empty_training_state,
          "flipped_byte_in_training_state": _flipped_byte, "garbled_state_json": _garbled_state_json}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_newest_save_is_kept_aside_and_the_one_before_used(damage, trained_run, tmp_path) -> None:
    _, run_folder = copy_trained(trained_run, tmp_path)
    newest = run_folder / "checkpoints" / SAVES[1]
    expected = DAMAGE[damage](newest)
    damaged_files = _files(newest)
    chosen = checkpoints.choose_resume(run_folder, rename=True)
    assert chosen.folder == run_folder / "checkpoints" / SAVES[0]
    (kept, problem), = chosen.damaged
    assert kept == newest.with_name(SAVES[1] + ".damaged") and expected in problem
    assert _files(kept) == damaged_files  # renamed, never deleted or changed
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == [SAVES[0], SAVES[1] + ".damaged"]
    state = checkpoints.load_training_state(chosen.folder)
    original = checkpoints.load_training_state(trained_run / "out" / "fault" / "checkpoints" / SAVES[0])
    assert state.step == 2 and state.lora_state.keys() == original.lora_state.keys()
    assert all(torch.equal(state.lora_state[key], tensor) for key, tensor in original.lora_state.items())


def test_when_every_save_is_damaged_the_run_stops_and_renames_nothing(trained_run, tmp_path) -> None:
    _, run_folder = copy_trained(trained_run, tmp_path)
    for save in SAVES:
        _empty_training_state(run_folder / "checkpoints" / save)
    with pytest.raises(CheckpointError) as raised:
        checkpoints.choose_resume(run_folder, rename=True)
    message = str(raised.value)
    assert f"every save in {run_folder / 'checkpoints'} is damaged" in message
    assert "step_000000004: training_state.pt" in message and "step_000000002: training_state.pt" in message
    assert run.exit_code(raised.value) == 1
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == SAVES


class _LoraWriter:
    """The model's save point, as LTX2Model.save_model writes a LoRA file (without the model)."""

    def save_model(self, path, lora_state, fmt, dtype, metadata, alpha, fold_strength=True, rank=None):
        from extensions_built_in.diffusion_models.ltx2.lora_names import LTX2_LORA_FILE_KEYS
        from toolkit.network.formats import save_lora

        # LTX2Model.save_model passes its key names: save.format comfy (the default) needs them.
        return save_lora(Path(path), lora_state, fmt, dtype, metadata, alpha, fold_strength, rank, keys=LTX2_LORA_FILE_KEYS)


def test_a_save_that_does_not_read_back_prunes_nothing(trained_run, tmp_path, monkeypatch) -> None:
    from toolkit.config import SaveConfig

    _, run_folder = copy_trained(trained_run, tmp_path)
    state = checkpoints.load_training_state(run_folder / "checkpoints" / SAVES[1])
    state.step = 6
    real_save = torch.save
    # the training state written, then cut short on its way to the disk
    monkeypatch.setattr(torch, "save", lambda obj, handle: (real_save(obj, handle), handle.truncate(100)))
    with pytest.raises(CheckpointError) as raised:
        checkpoints.save_training_state(_LoraWriter(), run_folder, "fault", state, SaveConfig(dtype="float32"), "{}", keep=1)
    message = str(raised.value)
    assert "the save of step 6 did not read back whole (training_state.pt is not a whole torch.save archive" in message
    assert f"it is kept as {run_folder / 'checkpoints' / 'step_000000006.damaged'}" in message
    assert f"The last good save is {run_folder / 'checkpoints' / SAVES[1]}" in message
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == [*SAVES, "step_000000006.damaged"]
    assert (run_folder / "fault_000000002.safetensors").is_file()  # keep=1 would have pruned it after a good save
    assert checkpoints.load_training_state(run_folder / "checkpoints" / SAVES[1]).step == 4


def test_resume_past_a_damaged_save_with_new_settings_then_a_full_disk(trained_run, tmp_path, capsys, monkeypatch) -> None:
    """run.main in this process (a full disk is about the files, not the process): every write to a file of step 6
    fails with ENOSPC, as tests/faults/probe_run.py's FAULT_DISK_FULL_AT makes it in a child."""
    import builtins

    from tests.faults.probe_run import open_on_a_full_disk_at

    job, run_folder = copy_trained(trained_run, tmp_path)
    _empty_training_state(run_folder / "checkpoints" / SAVES[1])
    _process(job)["train"].update(steps=6, lr=5e-4)
    config = write_yaml(tmp_path / "job.yaml", job)
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patched:
        patched.setattr(builtins, "open", open_on_a_full_disk_at("000000006"))
        outcome = run_here([str(config)], capsys)
    output = outcome.output
    assert outcome.returncode == 1, output[-3000:]
    damaged = run_folder / "checkpoints" / "step_000000004.damaged"
    assert f"Damaged save {damaged}: training_state.pt is not a whole torch.save archive" in output
    assert "Resuming from step 2 with changed settings: train.steps: 4 -> 6; train.lr: 0.001 -> 0.0005" in output
    assert "Resuming fault from step 2" in output
    last_line = outcome.stderr.strip().splitlines()[-1]
    new_save = run_folder / "checkpoints" / SAVES[1]
    assert last_line == (
        f"error: {run_folder / 'fault_000000006.safetensors'}: no space left on the device (ENOSPC) while saving "
        f"step 6. The last save, {new_save} (step 4), is intact: free some space, then run the same config again "
        "to resume from it."
    ), output[-3000:]
    assert "Traceback" not in output
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == [SAVES[0], SAVES[1], damaged.name]
    resumed = checkpoints.load_training_state(new_save)
    assert resumed.step == 4 and json.loads((new_save / "state.json").read_text())["step"] == 4
    assert load_file(run_folder / "fault_000000004.safetensors").keys()  # the LoRA of step 4 is whole
    assert not (run_folder / "run.lock").exists()
