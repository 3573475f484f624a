"""Flow matching as LTX-2 trains: noisy = (1 - sigma) * clean + sigma * noise, target = noise - clean."""

from __future__ import annotations

import torch


def shifted_sigmas(generator: torch.Generator, count: int, shift: float) -> torch.Tensor:
    """Noise levels in (0, 1): logit-normal, shifted towards high noise by `shift` (SD3 / LTX style)."""
    sigmas = torch.sigmoid(torch.randn(count, generator=generator))
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def add_noise(clean: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Broadcast per-sample (B,) or per-element sigmas over `clean`."""
    while sigmas.ndim < clean.ndim:
        sigmas = sigmas.unsqueeze(-1)
    return (1 - sigmas) * clean + sigmas * noise


def velocity_target(clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - clean


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the elements where `mask` is 1 (all of them without a mask)."""
    squared = (prediction.float() - target.float()) ** 2
    if mask is None:
        return squared.mean()
    mask = mask.to(squared.dtype).expand_as(squared)
    return (squared * mask).sum() / mask.sum().clamp(min=1)
