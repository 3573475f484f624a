"""Optimizer and learning-rate schedule for the LoRA weights.

The optimizers are the field's (torch AdamW, bitsandbytes AdamW8bit,
prodigyopt Prodigy), built as ai-toolkit builds them (its toolkit/optimizer.py):
`eps=1e-6` unless `optimizer_params` sets it, the optimizer's own weight decay
unless `train.weight_decay` or `optimizer_params` sets one, and Prodigy at
`lr` 1.0 when `train.lr` is below 0.1 (Prodigy finds the step size itself; its
lr is a multiplier). `train.optimizer_params` are passed as they are;
the schedules are diffusers' (`diffusers.optimization.get_scheduler`), with
`train.lr_warmup_steps` of linear warmup. `check_optimizer_settings` runs
before any model is loaded, so a missing package or a misspelt parameter
stops the run at once.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from toolkit.deferred_packages import DEFERRED, import_deferred, is_installed
from toolkit.errors import ConfigError
from toolkit.logging import get_logger

_PACKAGES = {"adamw8bit": "bitsandbytes==0.50.2", "prodigy": "prodigyopt==1.1.2"}

# get_scheduler's own arguments that `lr_scheduler_params` may set (the rest come from train:).
_SCHEDULER_PARAMS = {"num_cycles", "power", "step_rules"}


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class of `train.optimizer`, importing its package; a ConfigError when it is not installed."""
    if name == "adamw":
        return torch.optim.AdamW
    package = _package(name)
    check_optimizer_installed(name)
    try:
        module = import_deferred(package)  # bitsandbytes only now: see toolkit/deferred_packages.py
    except ImportError as error:
        raise ConfigError(
            f"train.optimizer: {name} needs the {package} package, which is installed but cannot be imported "
            f"({error}); pip install {_PACKAGES[name]}, or choose optimizer: adamw"
        ) from error
    return module.optim.AdamW8bit if name == "adamw8bit" else module.Prodigy


def check_optimizer_installed(name: str) -> None:
    """A ConfigError naming the package to install when `train.optimizer` needs one that is not there.

    Looked up without importing it, so a dry run does not pay for bitsandbytes' import.
    """
    if name != "adamw" and not is_installed(_package(name)):
        raise ConfigError(
            f"train.optimizer: {name} needs the {_package(name)} package, which is not installed; "
            f"pip install {_PACKAGES[name]} (it is in requirements.txt), or choose optimizer: adamw"
        )


def _package(name: str) -> str:
    if name not in _PACKAGES:
        raise ConfigError(f"train.optimizer: unknown optimizer {name!r}; use adamw, adamw8bit or prodigy")
    return _PACKAGES[name].split("==")[0]


# ai-toolkit's epsilon for every Adam-family optimizer it builds (adamw, adamw8bit, prodigy).
AITOOLKIT_EPS = 1e-6
# Below this, ai-toolkit takes train.lr for an Adam-style rate and runs Prodigy at 1.0, its own default.
PRODIGY_MIN_LR = 0.1


def optimizer_params(train_config) -> dict[str, Any]:
    """The keyword arguments the optimizer gets besides the parameters and `lr`."""
    params: dict[str, Any] = {"eps": AITOOLKIT_EPS}
    if train_config.weight_decay is not None:
        params["weight_decay"] = train_config.weight_decay
    return {**params, **train_config.optimizer_params}


def optimizer_lr(train_config) -> float:
    """The optimizer's `lr`: `train.lr`, except Prodigy below 0.1 runs at 1.0 (as in ai-toolkit)."""
    if train_config.optimizer == "prodigy" and train_config.lr < PRODIGY_MIN_LR:
        return 1.0
    return train_config.lr


def check_optimizer_settings(train_config, import_package: bool = True) -> None:
    """Stop before loading anything if the optimizer cannot be built as configured.

    With `import_package` False (the dry run) a deferred package (bitsandbytes) is only looked for,
    not imported, and its optimizer's parameter names are left to the run, which checks them here
    before loading.
    """
    name = train_config.optimizer
    if not import_package and name != "adamw" and _package(name) in DEFERRED:
        check_optimizer_installed(name)
        optimizer_type = None
    else:
        optimizer_type = optimizer_class(name)
    if "lr" in train_config.optimizer_params:
        raise ConfigError("train.optimizer_params.lr: set the learning rate with train.lr, not in optimizer_params")
    if optimizer_type is not None:
        _check_optimizer_params(optimizer_type, train_config)
    unknown = sorted(set(train_config.lr_scheduler_params) - _SCHEDULER_PARAMS)
    if unknown:
        raise ConfigError(
            f"train.lr_scheduler_params: {', '.join(unknown)} is not a schedule parameter; "
            f"get_scheduler takes {', '.join(sorted(_SCHEDULER_PARAMS))} (warmup and steps come from train:)"
        )
    if train_config.lr_scheduler == "piecewise_constant" and train_config.lr_warmup_steps:
        raise ConfigError(
            "train.lr_warmup_steps: piecewise_constant has no warmup; write the warmup into "
            "lr_scheduler_params.step_rules instead, or set lr_warmup_steps: 0"
        )


def _check_optimizer_params(optimizer_type: type, train_config) -> None:
    signature = inspect.signature(optimizer_type.__init__)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    known = [name for name in signature.parameters if name not in ("self", "params")]
    unknown = sorted(set(train_config.optimizer_params) - set(known))
    if unknown:
        raise ConfigError(
            f"train.optimizer_params: {', '.join(unknown)} is not a parameter of {optimizer_type.__name__} "
            f"(train.optimizer: {train_config.optimizer}); it takes {', '.join(known)}"
        )


def build_optimizer(parameters, train_config) -> torch.optim.Optimizer:
    """`train.optimizer` over `parameters` at `train.lr`, with `train.optimizer_params`."""
    optimizer_type = optimizer_class(train_config.optimizer)
    lr = optimizer_lr(train_config)
    if lr != train_config.lr:
        get_logger(__name__).info(
            "train.optimizer: prodigy runs at lr %g (train.lr %g is below %g, an Adam-style rate; Prodigy finds "
            "the step size itself), as in ai-toolkit", lr, train_config.lr, PRODIGY_MIN_LR,
        )
    try:
        return optimizer_type(parameters, lr=lr, **optimizer_params(train_config))
    except (TypeError, ValueError, RuntimeError) as error:
        raise ConfigError(
            f"train.optimizer: {train_config.optimizer} could not be built with optimizer_params "
            f"{train_config.optimizer_params} ({error}); fix train.optimizer_params or choose another optimizer"
        ) from error


def uses_grad_scaler(dtype: str, device: torch.device) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 have the range and need none."""
    return dtype == "fp16" and device.type == "cuda"


def build_grad_scaler(dtype: str, device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler of the step: active for fp16 on CUDA, a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=uses_grad_scaler(dtype, device))


def build_scheduler(optimizer: torch.optim.Optimizer, train_config) -> torch.optim.lr_scheduler.LambdaLR:
    """diffusers' `train.lr_scheduler` schedule over `train.steps`, after `lr_warmup_steps` of linear warmup.

    `constant` with a warmup is diffusers' `constant_with_warmup` (its `constant` has none).
    """
    from diffusers.optimization import get_scheduler

    name = train_config.lr_scheduler
    if name == "constant" and train_config.lr_warmup_steps:
        name = "constant_with_warmup"
    try:
        return get_scheduler(
            name,
            optimizer,
            num_warmup_steps=train_config.lr_warmup_steps,
            num_training_steps=train_config.steps,
            **train_config.lr_scheduler_params,
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"train.lr_scheduler: {train_config.lr_scheduler} with lr_scheduler_params "
            f"{train_config.lr_scheduler_params} failed ({error}); fix train.lr_scheduler_params"
        ) from error
