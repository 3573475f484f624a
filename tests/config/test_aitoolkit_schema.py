"""The schema holds ai-toolkit's LTX-2 training keys under our names, with ai-toolkit's defaults."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from extensions_built_in.sd_trainer.config import TrainProcessConfig
from toolkit.config import parse_config
from toolkit.config.train import LRSchedulerName
from toolkit.errors import ConfigError


def parsed(job: dict[str, Any]) -> TrainProcessConfig:
    process = parse_config(job).config.process[0]
    assert isinstance(process, TrainProcessConfig)
    return process


def test_new_keys_default_to_ai_toolkit_values(valid_job: dict) -> None:
    process = parsed(valid_job)
    dataset, train = process.datasets[0], process.train
    assert (dataset.num_repeats, dataset.flip_x, dataset.flip_y) == (1, False, False)
    assert (dataset.shrink_video_to_frames, dataset.auto_frame_count, dataset.shuffle_tokens) == (True, False, False)
    assert (dataset.is_reg, dataset.network_weight) == (False, 1.0)
    assert (train.optimizer_params, train.lr_scheduler, train.lr_scheduler_params) == ({}, "constant", {})
    assert (train.timestep_type, train.content_or_style, train.loss_type) == ("sigmoid", "balanced", "mse")
    assert train.force_first_sample is False and process.sample.sample_start_step == 0
    assert process.model.compile is False
    assert (process.network.lokr_full_rank, process.network.lokr_factor) == (False, -1)
    assert (process.save.push_to_hub, process.save.hf_repo_id, process.save.hf_private) == (False, None, False)


def test_new_keys_take_ai_toolkit_values(valid_job: dict) -> None:
    raw = valid_job["config"]["process"][0]
    raw["datasets"][0].update(num_repeats=3, flip_x=True, is_reg=True, network_weight=0.5, shrink_video_to_frames=False)
    raw["train"].update(
        optimizer="prodigy",
        optimizer_params={"weight_decay": 0.01, "betas": [0.9, 0.99]},
        lr_scheduler="cosine_with_restarts",
        lr_scheduler_params={"num_cycles": 2},
        timestep_type="weighted",
        content_or_style="style",
        loss_type="mae",
        force_first_sample=True,
    )
    raw["network"].update(type="lokr", lokr_full_rank=True, lokr_factor=4)
    raw["save"] = {"push_to_hub": True, "hf_repo_id": "me/my-lora", "hf_private": True}
    raw["model"]["compile"] = True
    raw["sample"]["sample_start_step"] = 100
    process = parsed(valid_job)
    assert process.datasets[0].num_repeats == 3 and process.datasets[0].network_weight == 0.5
    assert process.train.optimizer_params == {"weight_decay": 0.01, "betas": [0.9, 0.99]}
    assert (process.train.lr_scheduler, process.train.lr_scheduler_params) == ("cosine_with_restarts", {"num_cycles": 2})
    assert (process.network.type, process.network.lokr_factor) == ("lokr", 4)
    assert process.save.hf_repo_id == "me/my-lora" and process.model.compile is True
    assert process.sample.sample_start_step == 100


def test_scheduler_names_are_the_ones_diffusers_knows() -> None:
    from diffusers.optimization import SchedulerType

    assert set(get_args(LRSchedulerName)) == {kind.value for kind in SchedulerType}


@pytest.mark.parametrize(
    ("block", "key", "given", "stored"),
    [
        ("save", "dtype", "bf16", "bfloat16"),
        ("save", "dtype", "fp16", "float16"),
        ("save", "dtype", "float32", "float32"),
        ("train", "dtype", "bfloat16", "bf16"),
        ("train", "dtype", "float16", "fp16"),
        ("model", "dtype", "float32", "fp32"),
        ("model", "te_dtype", "bfloat16", "bf16"),
    ],
)
def test_dtypes_accept_both_spellings(valid_job: dict, block: str, key: str, given: str, stored: str) -> None:
    raw = valid_job["config"]["process"][0]
    raw.setdefault(block, {})[key] = given
    assert getattr(getattr(parsed(valid_job), block), key) == stored


def test_bad_new_values_are_named(valid_job: dict) -> None:
    raw = valid_job["config"]["process"][0]
    raw["network"]["lokr_factor"] = 0
    raw["save"] = {"dtype": "int8"}
    raw["train"]["lr_scheduler"] = "one_cycle"
    with pytest.raises(ConfigError) as caught:
        parse_config(valid_job)
    message = str(caught.value)
    assert "config.process[0].network.lokr_factor: lokr_factor 0 must be -1" in message
    assert "config.process[0].save.dtype: 'int8' is not allowed" in message
    assert "config.process[0].train.lr_scheduler: 'one_cycle' is not allowed" in message


def test_push_to_hub_needs_a_repo(valid_job: dict) -> None:
    valid_job["config"]["process"][0]["save"] = {"push_to_hub": True}
    with pytest.raises(ConfigError, match=r"config.process\[0\].save: push_to_hub needs hf_repo_id"):
        parse_config(valid_job)


def test_optimizer_numbers_written_without_a_dot_are_numbers() -> None:
    # PyYAML reads `weight_decay: 1e-4` (ai-toolkit's spelling) as the string '1e-4'.
    import yaml

    from toolkit.config.train import TrainConfig

    params = yaml.safe_load("weight_decay: 1e-4\nbetas: [0.9, 0.99]\nfused: x")
    assert params["weight_decay"] == "1e-4"
    train = TrainConfig(optimizer_params=params, lr_scheduler_params={"power": "2e0"})
    assert train.optimizer_params == {"weight_decay": 1e-4, "betas": [0.9, 0.99], "fused": "x"}
    assert train.lr_scheduler_params == {"power": 2.0}
