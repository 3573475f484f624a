"""Each trainer setting does what it says: weight decay, fp16 loss scaling, per-dataset caption dropout,
LoRA exclusions by suffix, W&B availability, and the measured data time."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from extensions_built_in.sd_trainer.optim import build_optimizer, uses_grad_scaler
from tests.trainer.conftest import RecordedPredictions, copy_clips, lora_tensors, set_up_trainer, write_config
from toolkit.config import NetworkConfig, TrainConfig, parse_config
from toolkit.errors import ConfigError, TrainingError
from toolkit.network.lora import resolve_targets


def test_weight_decay_setting_decays_the_weights():
    weights = torch.nn.Parameter(torch.full((4,), 2.0))
    optimizer = build_optimizer([weights], TrainConfig(lr=0.1, weight_decay=0.5))
    weights.grad = torch.zeros(4)
    optimizer.step()
    # AdamW's decoupled decay with a zero gradient: w <- w * (1 - lr * weight_decay)
    torch.testing.assert_close(weights.detach(), torch.full((4,), 2.0 * (1 - 0.1 * 0.5)))
    assert TrainConfig().weight_decay is None  # unset: the optimizer's own default, as in ai-toolkit (docs/aitoolkit.md)


def test_exclude_modules_are_suffixes_on_module_name_boundaries(tiny_model):
    transformer = tiny_model.transformer
    everything = resolve_targets(transformer, NetworkConfig(target_modules=["to_q"]))
    kept = resolve_targets(transformer, NetworkConfig(target_modules=["to_q"], exclude_modules=["attn1.to_q"]))
    assert sorted(set(everything) - set(kept)) == ["transformer_blocks.0.attn1.to_q", "transformer_blocks.1.attn1.to_q"]
    assert "transformer_blocks.0.audio_attn1.to_q" in kept  # "attn1.to_q" is not a suffix of audio_attn1.to_q
    # a fragment that is not a whole dotted part excludes nothing
    assert resolve_targets(transformer, NetworkConfig(target_modules=["to_q"], exclude_modules=["n1.to_q"])) == everything


def test_use_wandb_without_wandb_is_a_config_error(monkeypatch, tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    raw = {
        "job": "extension",
        "config": {
            "name": "wandb_missing",
            "process": [
                {
                    "type": "sd_trainer",
                    "model": {"name_or_path": "tiny-ltx2"},
                    "datasets": [{"folder_path": str(tmp_path)}],
                    "logging": {"use_wandb": True},
                }
            ],
        },
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(raw)
    assert "config.process[0].logging: use_wandb is true but the wandb package is not installed" in str(raised.value)


def test_grad_scaler_is_used_for_fp16_on_cuda_only():
    assert uses_grad_scaler("fp16", torch.device("cuda", 0))
    assert not uses_grad_scaler("bf16", torch.device("cuda", 0))
    assert not uses_grad_scaler("fp32", torch.device("cuda", 0))
    assert not uses_grad_scaler("fp16", torch.device("cpu"))


@pytest.fixture(scope="module")
def one_trainer(tmp_path_factory, tiny_ready):
    folder = tmp_path_factory.mktemp("settings")
    return set_up_trainer(write_config(folder, {"train.steps": 8, "train.lr": 1e-2}, name="settings_test"))


def _step_from(trainer, start_weights, start_optimizer, scaler):
    trainer.network.load_state_dict(start_weights)
    trainer.optimizer.load_state_dict(start_optimizer)
    trainer.updates.scaler = scaler
    return trainer.hook_train_loop(0), lora_tensors(trainer)


def test_a_grad_scaler_unscales_before_clipping_and_skips_overflowing_steps(one_trainer):
    """The loss-scaling wiring, exercised with torch's CPU GradScaler (fp16 itself needs CUDA)."""
    trainer = one_trainer
    start_weights, start_optimizer = lora_tensors(trainer), trainer.optimizer.state_dict()
    start_optimizer = {"state": {}, "param_groups": start_optimizer["param_groups"]}
    plain, plain_weights = _step_from(trainer, start_weights, start_optimizer, torch.amp.GradScaler("cpu", enabled=False))
    scaled, scaled_weights = _step_from(trainer, start_weights, start_optimizer, torch.amp.GradScaler("cpu", init_scale=1024.0))
    assert scaled.grad_norm == pytest.approx(plain.grad_norm, rel=1e-4)  # unscaled before the norm and clipping
    for key, tensor in plain_weights.items():
        torch.testing.assert_close(scaled_weights[key], tensor, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(plain_weights[key], start_weights[key]) for key in start_weights)

    # An fp16 overflow: one gradient becomes inf. The scaler skips the step and halves its scale; no error.
    parameter = trainer.network.parameters()[0]
    hook = parameter.register_hook(lambda grad: grad * float("inf"))
    try:
        overflowing = torch.amp.GradScaler("cpu", init_scale=1024.0)
        skipped, skipped_weights = _step_from(trainer, start_weights, start_optimizer, overflowing)
        assert skipped.skipped and overflowing.get_scale() == 512.0
        for key, tensor in start_weights.items():
            assert torch.equal(skipped_weights[key], tensor), key
        # without a scaler the same step is a non-finite stop
        with pytest.raises(TrainingError, match="step 0: the gradients went non-finite"):
            _step_from(trainer, start_weights, start_optimizer, torch.amp.GradScaler("cpu", enabled=False))
    finally:
        hook.remove()


def test_data_time_is_measured_and_reaches_tensorboard(one_trainer):
    from extensions_built_in.sd_trainer.tensorboard_callback import TensorBoardCallback

    performance = []

    class Monitor:
        def __getattr__(self, name):
            if name == "log_performance":
                return lambda step, seconds, data_s: performance.append((seconds, data_s))
            return lambda *args, **kwargs: False

    result = one_trainer.hook_train_loop(1)
    assert 0.0 < result.data_seconds < result.seconds
    TensorBoardCallback(Monitor()).on_step_end(one_trainer, 1, result, None)
    assert performance == [(result.seconds, result.data_seconds)]


def test_caption_dropout_rate_applies_to_its_own_dataset(tmp_path, tiny_ready):
    always, never = copy_clips(tmp_path / "always", 2), copy_clips(tmp_path / "never", 2)
    config = write_config(
        tmp_path,
        {
            "datasets": [
                {"folder_path": str(always), "caption_dropout_rate": 1.0, "num_frames": 9, "resolution": [64]},
                {"folder_path": str(never), "caption_dropout_rate": 0.0, "num_frames": 9, "resolution": [64]},
            ],
            "train.steps": 4,
        },
        name="dropout_test",
    )
    trainer = set_up_trainer(config)
    recorded = RecordedPredictions(trainer.model)
    dropped_by_folder = {}
    for position in range(4):
        trainer.step_loss.compute([position], 0)
        example = trainer.data.examples[trainer.order.example_at(position)]
        embeds = recorded.calls[-1]["prompt"]["video"].cpu()
        dropped = torch.equal(embeds, trainer.empty_prompt["video"])
        assert dropped != torch.equal(embeds, example.prompt["video"])
        dropped_by_folder.setdefault(example.path.parent.name, set()).add(dropped)
    assert dropped_by_folder == {"always": {True}, "never": {False}}
