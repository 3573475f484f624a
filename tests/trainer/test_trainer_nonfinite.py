"""Non-finite training stops at the first bad step (or skips it), and no file ever holds NaN or inf."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import run
from extensions_built_in.sd_trainer import checkpoints
from extensions_built_in.sd_trainer.nonfinite import nonfinite_error, nonfinite_parts
from tests.trainer.conftest import lora_tensors, set_up_trainer, train_steps, write_config
from toolkit.errors import CheckpointError, TrainingError
from toolkit.network.formats import save_lora

NAME = "nonfinite_test"


def _all_tensors(run_folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor the run left on disk: LoRA files and checkpoint folders."""
    tensors = {}
    for path in run_folder.rglob("*.safetensors"):
        if "cache" in path.parts[-2]:
            continue
        tensors.update({f"{path}:{key}": value for key, value in load_file(path).items()})
    for path in run_folder.rglob("training_state.pt"):
        bundle = torch.load(path, weights_only=False)
        for group in bundle["optimizer"]["state"].values():
            tensors.update({f"{path}:{key}": value for key, value in group.items() if torch.is_tensor(value)})
    return tensors


def test_huge_learning_rate_stops_with_the_step_part_and_last_checkpoint(tmp_path, tiny_ready, capsys):
    config = write_config(
        tmp_path,
        {"train.steps": 6, "train.lr": 1e30, "save.save_every": 1, "save.dtype": "float32"},
        name=NAME,
    )
    assert run.main([str(config)]) == run.EXIT_RUNTIME_ERROR
    message = capsys.readouterr().err
    run_folder = tmp_path / "output" / NAME
    assert "error: step 1: the video loss, the audio loss and the gradients went non-finite" in message
    assert "grad norm nan" in message
    assert f"Last good checkpoint: {run_folder / 'checkpoints' / 'step_000000001'}" in message
    assert "train.nonfinite: skip_step" in message
    assert "Traceback" not in message
    # Nothing of the bad step was saved; what was saved is finite, down to the optimizer moments.
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == ["step_000000001"]
    assert not (run_folder / f"{NAME}.safetensors").exists()
    left = _all_tensors(run_folder)
    assert any("lora_B" in key for key in left) and any("exp_avg" in key for key in left)
    assert [key for key, tensor in left.items() if not torch.isfinite(tensor).all()] == []


def test_skip_step_leaves_the_weights_and_counts_the_skip(tmp_path, tiny_ready):
    trainer = set_up_trainer(write_config(tmp_path, {"train.steps": 4, "train.nonfinite": "skip_step"}, name=NAME))
    compute = trainer.step_loss.compute

    def nan_at_step_one(positions, step, keep_details=False):
        parts = compute(positions, step, keep_details)
        if step == 1:
            audio = parts.audio * float("nan")
            return parts._replace(loss=parts.loss + audio, audio=audio)
        return parts

    trainer.step_loss.compute = nan_at_step_one
    first = train_steps(trainer, 1)[0]
    before = lora_tensors(trainer)
    skipped = train_steps(trainer, 1)[0]
    after_skip = lora_tensors(trainer)
    last = train_steps(trainer, 1)[0]
    assert not first.skipped and skipped.skipped and not last.skipped
    assert math.isnan(skipped.audio_loss) and trainer.updates.skipped == 1
    for key, tensor in before.items():
        assert torch.equal(after_skip[key], tensor), key
    assert any(not torch.equal(lora_tensors(trainer)[key], tensor) for key, tensor in before.items())


def test_stop_policy_error_names_a_preservation_part_without_checkpoint():
    parts = {"video": 0.5, "audio": 0.25, "preservation": float("inf")}
    assert nonfinite_parts(parts, 3.0) == ["preservation"]
    assert nonfinite_parts({"video": 0.5}, float("nan")) == ["gradients"]
    assert nonfinite_parts({"video": 0.5}, float("nan"), check_gradients=False) == []
    error = nonfinite_error(7, ["preservation"], parts, 3.0, None)
    assert isinstance(error, TrainingError)
    assert str(error).startswith("step 7: the preservation loss went non-finite (NaN or inf): video 0.5, audio 0.25,")
    assert "Last good checkpoint: none (nothing was saved before this step)" in str(error)


def test_save_paths_refuse_nonfinite_tensors(tmp_path):
    finite = {"blocks.0.to_q.lora_A.weight": torch.ones(2, 4), "blocks.0.to_q.lora_B.weight": torch.ones(4, 2)}
    broken = {**finite, "blocks.0.to_q.lora_B.weight": torch.tensor([[1.0, float("nan")]] * 4)}
    with pytest.raises(CheckpointError, match="1 of 2 tensors hold NaN or inf .*not finite"):
        save_lora(tmp_path / "nan.safetensors", broken, "diffusers", torch.float32, {}, 2.0)
    huge = {**finite, "blocks.0.to_q.lora_A.weight": torch.full((2, 4), 1e6)}
    with pytest.raises(CheckpointError, match="overflow torch.float16.*save.dtype: float32"):
        save_lora(tmp_path / "huge.safetensors", huge, "diffusers", torch.float16, {}, 2.0)
    assert save_lora(tmp_path / "huge.safetensors", huge, "diffusers", torch.bfloat16, {}, 2.0).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.safetensors"]

    optimizer_state = {"state": {0: {"exp_avg": torch.tensor([float("inf")])}}, "param_groups": []}
    state = checkpoints.TrainingState(1, finite, optimizer_state, {}, checkpoints.rng_state(), {}, 2.0)
    with pytest.raises(CheckpointError, match=r"not saving step 1 .*optimizer.state.0.exp_avg.*none \(nothing"):
        checkpoints.save_training_state(None, tmp_path / "run", "x", state, None, "", 2)  # refused before the model is asked
    assert not (tmp_path / "run").exists()
