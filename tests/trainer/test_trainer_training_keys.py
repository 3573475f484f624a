"""ai-toolkit's training keys, unit by unit: optimizer, optimizer_params, lr_scheduler, timestep_type,
content_or_style, loss_type, regularisation order and adapter strength (no model loaded)."""

from __future__ import annotations

import sys
import types
import typing

import pytest
import torch
from diffusers.optimization import get_scheduler

from extensions_built_in.sd_trainer.flow_matching import (
    GRID_SIZE,
    draw_sigmas,
    masked_loss,
    sigma_grid,
    timestep_loss_weights,
)
from extensions_built_in.sd_trainer.network_strength import adapter_strength
from extensions_built_in.sd_trainer.optim import build_optimizer, build_scheduler, check_optimizer_settings
from extensions_built_in.sd_trainer.training_data import ExampleOrder
from toolkit.config.train import LRSchedulerName, TrainConfig
from toolkit.errors import ConfigError, DataError


def _weights() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(4, 4))]


def _draws(timestep_type: str, content_or_style: str = "balanced", count: int = 400) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return draw_sigmas(generator, count, timestep_type, content_or_style, shift=3.0)


# -- optimizer -------------------------------------------------------------
def test_optimizer_params_reach_the_optimizer() -> None:
    train = TrainConfig(lr=2e-4, optimizer_params={"weight_decay": 0.05, "betas": [0.8, 0.95], "eps": 1e-6})
    optimizer = build_optimizer(_weights(), train)
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.AdamW
    assert (group["lr"], group["weight_decay"], tuple(group["betas"]), group["eps"]) == (2e-4, 0.05, (0.8, 0.95), 1e-6)
    # Nothing set: ai-toolkit's eps and the optimizer's own weight decay (torch AdamW: 0.01).
    defaults = build_optimizer(_weights(), TrainConfig()).param_groups[0]
    assert (defaults["eps"], defaults["weight_decay"]) == (1e-6, 0.01)
    assert build_optimizer(_weights(), TrainConfig(weight_decay=1e-4)).param_groups[0]["weight_decay"] == 1e-4


def test_prodigy_is_prodigyopt_with_its_params_and_steps() -> None:
    prodigyopt = pytest.importorskip("prodigyopt")  # pinned in requirements.txt
    weights = _weights()
    train = TrainConfig(lr=1.0, optimizer="prodigy", optimizer_params={"d_coef": 2.0, "weight_decay": 0.0})
    check_optimizer_settings(train)
    optimizer = build_optimizer(weights, train)
    assert isinstance(optimizer, prodigyopt.Prodigy) and optimizer.param_groups[0]["d_coef"] == 2.0
    # As in ai-toolkit, an Adam-style train.lr (below 0.1) runs Prodigy at its own lr, 1.0.
    low = build_optimizer(_weights(), TrainConfig(lr=1e-4, optimizer="prodigy")).param_groups[0]
    assert (low["lr"], low["eps"], low["weight_decay"]) == (1.0, 1e-6, 0.0)
    assert build_optimizer(_weights(), TrainConfig(lr=0.5, optimizer="prodigy")).param_groups[0]["lr"] == 0.5
    weights[0].grad = torch.ones(4, 4)
    optimizer.step()
    assert not torch.equal(weights[0].detach(), torch.ones(4, 4))


def test_adamw8bit_without_bitsandbytes_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", [])  # nothing on the path: not installed, as far as Python can tell
    for import_package in (True, False):  # the run and the dry run
        with pytest.raises(ConfigError, match=r"train.optimizer: adamw8bit needs the bitsandbytes package.*pip install bitsandbytes==0.50.2"):
            check_optimizer_settings(TrainConfig(optimizer="adamw8bit"), import_package=import_package)


def test_adamw8bit_is_bitsandbytes_adamw8bit_with_the_params(monkeypatch: pytest.MonkeyPatch) -> None:
    built = {}

    class RecordingAdamW8bit(torch.optim.AdamW):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, **kwargs):
            built.update(lr=lr, weight_decay=weight_decay, betas=tuple(betas), eps=eps)
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    fake = types.ModuleType("bitsandbytes")
    fake.optim = types.SimpleNamespace(AdamW8bit=RecordingAdamW8bit)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    train = TrainConfig(lr=3e-4, optimizer="adamw8bit", optimizer_params={"betas": [0.9, 0.99]})
    assert isinstance(build_optimizer(_weights(), train), RecordingAdamW8bit)
    assert built == {"lr": 3e-4, "weight_decay": 1e-2, "betas": (0.9, 0.99), "eps": 1e-6}  # bitsandbytes' own decay


def test_unknown_optimizer_params_are_named_before_anything_loads() -> None:
    with pytest.raises(ConfigError, match=r"train.optimizer_params: momentum is not a parameter of AdamW"):
        check_optimizer_settings(TrainConfig(optimizer_params={"momentum": 0.9}))
    with pytest.raises(ConfigError, match=r"optimizer_params.lr: set the learning rate with train.lr"):
        check_optimizer_settings(TrainConfig(optimizer_params={"lr": 0.1}))
    with pytest.raises(ConfigError, match=r"train.lr_scheduler_params: gamma is not a schedule parameter"):
        check_optimizer_settings(TrainConfig(lr_scheduler_params={"gamma": 0.5}))


# -- schedules -------------------------------------------------------------
def _learning_rates(train: TrainConfig, steps: int) -> list[float]:
    optimizer = build_optimizer(_weights(), train)
    scheduler = build_scheduler(optimizer, train)
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("name", typing.get_args(LRSchedulerName))
def test_every_diffusers_schedule_runs_as_diffusers_computes_it(name: str) -> None:
    params = {"step_rules": "1:5,0.5"} if name == "piecewise_constant" else {}
    warmup = 0 if name == "piecewise_constant" else 2
    train = TrainConfig(lr=1.0, steps=10, lr_scheduler=name, lr_warmup_steps=warmup, lr_scheduler_params=params)
    reference_optimizer = torch.optim.AdamW(_weights(), lr=1.0)
    reference_name = "constant_with_warmup" if name == "constant" else name
    reference = get_scheduler(reference_name, reference_optimizer, num_warmup_steps=warmup, num_training_steps=10, **params)
    expected = []
    for _ in range(10):
        expected.append(reference.get_last_lr()[0])
        reference_optimizer.step()
        reference.step()
    assert _learning_rates(train, 10) == pytest.approx(expected)


def test_warmup_is_kept_for_constant_and_schedules_decay_after_it() -> None:
    constant = _learning_rates(TrainConfig(lr=1.0, steps=8, lr_warmup_steps=4), 8)
    assert constant == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0])
    cosine = _learning_rates(TrainConfig(lr=1.0, steps=8, lr_warmup_steps=2, lr_scheduler="cosine"), 8)
    assert cosine[:3] == pytest.approx([0.0, 0.5, 1.0]) and cosine[-1] < 0.1
    assert all(later < earlier for earlier, later in zip(cosine[2:], cosine[3:]))


# -- noise levels ----------------------------------------------------------
def test_timestep_types_draw_their_distributions() -> None:
    linear, sigmoid, shifted = _draws("linear"), _draws("sigmoid"), _draws("shift")
    assert 0.45 < linear.mean() < 0.55 and 0.25 < linear.std() < 0.33  # even over (0, 1]: std 0.289
    assert 0.45 < sigmoid.mean() < 0.55 and sigmoid.std() < 0.24  # logit-normal: packed around the middle
    assert shifted.mean() > 0.65  # shift 3 pushes towards high noise
    assert all(0.0 < sigma <= 1.0 for sigma in torch.cat([linear, sigmoid, shifted]).tolist())
    grid = sigma_grid(torch.Generator().manual_seed(1), "lognorm_blend", 1.0)
    assert grid.shape == (GRID_SIZE,) and torch.all(grid[:-1] >= grid[1:])


def test_content_favours_high_noise_and_style_low_noise() -> None:
    balanced, content, style = _draws("linear"), _draws("linear", "content"), _draws("linear", "style")
    # On the even grid, content draws 1 - u**3 (mean 0.75) and style u**3 (mean 0.25).
    assert content.mean() == pytest.approx(0.75, abs=0.04) and style.mean() == pytest.approx(0.25, abs=0.04)
    assert style.mean() < balanced.mean() < content.mean()
    assert _draws("sigmoid", "content").median() > 0.6 > 0.4 > _draws("sigmoid", "style").median()


def test_weighted_weights_the_loss_with_a_bell_over_the_noise_level() -> None:
    sigmas = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    weights = timestep_loss_weights(sigmas, "weighted")
    assert weights[2] == weights.max() and weights[0] == pytest.approx(0.0, abs=1e-6)
    assert weights[1] == pytest.approx(weights[3].item())
    assert timestep_loss_weights(torch.linspace(0, 1, GRID_SIZE), "weighted").mean() == pytest.approx(1.0, rel=1e-3)
    assert torch.equal(timestep_loss_weights(sigmas, "sigmoid"), torch.ones(5))


def test_loss_types_and_clip_weights() -> None:
    prediction = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    target = torch.zeros(2, 2)
    assert masked_loss(prediction, target, loss_type="mse").item() == pytest.approx((1 + 4 + 0.25) / 4)
    assert masked_loss(prediction, target, loss_type="mae").item() == pytest.approx((1 + 2 + 0.5) / 4)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert masked_loss(prediction, target, mask, "mae").item() == pytest.approx((1 + 0.5) / 3)
    weighted = masked_loss(prediction, target, loss_type="mae", clip_weights=torch.tensor([2.0, 0.0]))
    assert weighted.item() == pytest.approx(2 * (1 + 2) / 4)


# -- regularisation and adapter strength -----------------------------------
def test_regularisation_examples_train_on_every_other_step() -> None:
    is_reg = [False, False, False, True, True]
    order = ExampleOrder(is_reg, seed=5, per_step=2)
    steps = [[order.example_at(p) for p in order.positions(step)] for step in range(6)]
    assert all(set(steps[s]) <= {3, 4} for s in (0, 2, 4))
    assert all(set(steps[s]) <= {0, 1, 2} for s in (1, 3, 5))
    assert sorted(steps[1] + steps[3][:1]) == [0, 1, 2]  # each training example once in its first epoch
    plain = ExampleOrder([False] * 3, seed=5, per_step=2)
    assert sorted(plain.example_at(p) for p in range(3)) == [0, 1, 2] and plain.count == 3
    with pytest.raises(DataError, match="is_reg"):
        ExampleOrder([True, True], seed=5, per_step=1)


def test_adapter_strength_scales_the_lora_output_and_restores_it() -> None:
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    base = model(torch.ones(1, 8)).detach()
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=4, target_modules=["0"], init_lora_weights=False), model)
    inputs = torch.ones(1, 8)
    full = model(inputs).detach()
    with adapter_strength(model, 0.5):
        half = model(inputs).detach()
    with adapter_strength(model, 0.0):
        off = model(inputs).detach()
    assert torch.allclose(half - base, 0.5 * (full - base), atol=1e-6)
    assert torch.allclose(off, base, atol=1e-6)
    assert torch.allclose(model(inputs), full)
