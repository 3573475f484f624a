"""Optimizer and learning-rate schedule for the LoRA weights."""

from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger(__name__)


def build_optimizer(parameters, train_config, device: torch.device) -> torch.optim.Optimizer:
    if train_config.optimizer == "adamw8bit":
        if device.type == "cuda":
            try:
                import bitsandbytes as bnb

                return bnb.optim.AdamW8bit(parameters, lr=train_config.lr, weight_decay=train_config.weight_decay)
            except ImportError:
                log.warning("train.optimizer: adamw8bit needs bitsandbytes (pip install bitsandbytes); using AdamW")
        else:
            log.warning("train.optimizer: adamw8bit needs a CUDA device; using AdamW on %s", device.type)
    return torch.optim.AdamW(parameters, lr=train_config.lr, weight_decay=train_config.weight_decay)


def uses_grad_scaler(dtype: str, device: torch.device) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 have the range and need none."""
    return dtype == "fp16" and device.type == "cuda"


def build_grad_scaler(dtype: str, device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler of the step: active for fp16 on CUDA, a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=uses_grad_scaler(dtype, device))


def build_scheduler(optimizer: torch.optim.Optimizer, train_config) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over `lr_warmup_steps`, then constant, cosine or linear decay to 0 at `steps`."""
    warmup = train_config.lr_warmup_steps
    total = train_config.steps
    kind = train_config.lr_scheduler

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - progress

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
