"""Gradient clipping that keeps each gradient's norm, so the gradient metrics need no second pass.

`torch.nn.utils.clip_grad_norm_` computes every gradient's norm and keeps only their total; TensorBoard's
11_Gradient_Stats (a norm per block) then computed them all again after clipping. With `log_every: 1` that
second pass cost 2-3 % of a step on the 8-block benchmark model (`bench_trainer_overhead.py`). `clip_gradients`
does what `clip_grad_norm_` does, in the same order and with the same kernels (the total and the clipped
gradients are bit for bit the same: tests/trainer/test_gradient_clipping.py), and keeps the norms; a norm after
clipping is the norm before it times the factor clipping applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClippedGradients:
    """One step's clipping: the total norm before it, and each gradient's norm (read back only when asked)."""

    names: tuple[str, ...]  # the parameters that had a gradient, in the order of `norms`
    norms: torch.Tensor  # their norms before clipping, stacked (the gradients' dtype, on the first one's device)
    total: torch.Tensor  # the norm of them all, before clipping
    max_norm: float

    @property
    def total_norm(self) -> float:
        """`total` read back: what `clip_grad_norm_` returns, as a number."""
        return float(self.total)

    def applied_norms(self) -> dict[str, float]:
        """Each gradient's norm as the optimizer got it (after clipping), by parameter name: one read-back."""
        scale = torch.clamp(self.max_norm / (self.total + 1e-6), max=1.0)  # the factor clip_grads_with_norm_ applied
        return dict(zip(self.names, (self.norms.float() * scale.float()).tolist()))


@torch.no_grad()
def clip_gradients(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], max_norm: float) -> ClippedGradients:
    """Scale the gradients so that their total L2 norm is at most `max_norm` (`inf`: measure only), as
    `clip_grad_norm_(parameters, max_norm)` does."""
    named = [(name, param) for name, param in named_parameters if param.grad is not None]
    if not named:
        return ClippedGradients((), torch.zeros(0), torch.zeros(()), float(max_norm))
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}  # as clip_grad_norm_ groups them: first seen first
    for index, (_, param) in enumerate(named):
        groups.setdefault((param.grad.device, param.grad.dtype), []).append(index)
    order = [index for indices in groups.values() for index in indices]
    norms = [norm for indices in groups.values() for norm in torch._foreach_norm([named[i][1].grad for i in indices], 2.0)]
    first_device = named[0][1].grad.device
    stacked = torch.stack([norm.to(first_device) for norm in norms])
    total = torch.linalg.vector_norm(stacked, 2.0)
    torch.nn.utils.clip_grads_with_norm_([param for _, param in named], max_norm, total)
    return ClippedGradients(tuple(named[i][0] for i in order), stacked, total, float(max_norm))
