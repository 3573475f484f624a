"""Flow matching as LTX-2 trains: noisy = (1 - sigma) * clean + sigma * noise, target = noise - clean.

Noise levels are drawn the way ai-toolkit's flow-matching trainer draws them:
`timestep_type` makes a grid of 1000 noise levels sorted from high to low
(sigmoid: logit-normal; linear and weighted: even; shift: even, shifted
towards high noise by `timestep_shift`; lognorm_blend: three quarters
log-normal near the middle, a quarter even), and `content_or_style` picks a
place on it (balanced: anywhere; content: u**3 of the way, favouring high
noise, where composition and motion are decided; style: 1 - u**3, favouring
low noise and detail). `weighted` also weights each clip's loss with a bell
curve over the noise level.
"""

from __future__ import annotations

import functools

import torch

GRID_SIZE = 1000
_LOWEST_EVEN_SIGMA = 1 / GRID_SIZE  # ai-toolkit's even grid runs from timestep 1000 down to 1


def draw_sigmas(
    generator: torch.Generator, count: int, timestep_type: str, content_or_style: str, shift: float
) -> torch.Tensor:
    """`count` noise levels in (0, 1], drawn from `generator` (see the module docstring)."""
    sigmas = []
    for _ in range(count):
        grid = sigma_grid(generator, timestep_type, shift)
        place = torch.rand(1, generator=generator).item()
        sigmas.append(grid[grid_index(place, content_or_style)])
    return torch.stack(sigmas)


def grid_index(place: float, content_or_style: str) -> int:
    """The index on the grid that a uniform draw `place` in [0, 1) picks (see the module docstring)."""
    if content_or_style == "content":
        place = place**3
    elif content_or_style == "style":
        place = 1 - place**3
    elif content_or_style != "balanced":
        raise ValueError(f"unknown content_or_style {content_or_style!r}")
    return min(GRID_SIZE - 1, int(place * GRID_SIZE))


def sigma_grid(generator: torch.Generator, timestep_type: str, shift: float) -> torch.Tensor:
    """GRID_SIZE noise levels of `timestep_type`, sorted from high to low."""
    even = torch.linspace(1.0, _LOWEST_EVEN_SIGMA, GRID_SIZE)
    if timestep_type in ("linear", "weighted"):
        return even
    if timestep_type == "shift":
        return shift * even / (1 + (shift - 1) * even)
    if timestep_type == "sigmoid":
        grid = torch.sigmoid(torch.randn(GRID_SIZE, generator=generator))
    elif timestep_type == "lognorm_blend":
        blended = int(GRID_SIZE * 0.75)
        lognormal = torch.exp(0.333 * torch.randn(blended, generator=generator))
        grid = torch.cat([1 - lognormal / lognormal.max(), torch.linspace(1.0, _LOWEST_EVEN_SIGMA, GRID_SIZE - blended)])
    else:
        raise ValueError(f"unknown timestep_type {timestep_type!r}")
    return torch.sort(grid, descending=True).values


# Evaluation levels come from this many grids of the training sampler, each read at GRID_SIZE even places.
_QUANTILE_GRIDS = 64
_QUANTILE_SEED = 20_240_601  # a constant: the levels depend on the sampler's settings, never on train.seed
_LOWEST_EVALUATED_SIGMA = 0.01


@functools.lru_cache(maxsize=16)
def evaluation_sigmas(count: int, timestep_type: str, content_or_style: str, shift: float) -> tuple[float, ...]:
    """`count` fixed noise levels that stand for the training distribution, high to low.

    The levels are the middles of `count` equally likely slices (quantiles (i + 0.5) / count) of
    the levels `draw_sigmas` gives with these settings, read off the sampler's own pieces:
    `sigma_grid` (for the random grids, `_QUANTILE_GRIDS` of them from a fixed generator) at the
    indices `grid_index` gives for GRID_SIZE evenly spaced draws. Rounded to 0.01 (at least 0.01;
    levels that round together count once), so the mean over them estimates the loss over the
    training distribution and the levels read as names (`sigma_0.50`).
    """
    generator = torch.Generator().manual_seed(_QUANTILE_SEED)
    indices = torch.tensor([grid_index((k + 0.5) / GRID_SIZE, content_or_style) for k in range(GRID_SIZE)])
    levels = torch.cat([sigma_grid(generator, timestep_type, shift)[indices] for _ in range(_QUANTILE_GRIDS)])
    quantiles = torch.quantile(levels.double(), (torch.arange(count, dtype=torch.float64) + 0.5) / count)
    rounded = {max(_LOWEST_EVALUATED_SIGMA, round(float(level), 2)) for level in quantiles}
    return tuple(sorted(rounded, reverse=True))


def timestep_loss_weights(sigmas: torch.Tensor, timestep_type: str) -> torch.Tensor:
    """Per-clip loss weights: a bell curve over the noise level for `weighted` (mean 1 over the grid), else 1."""
    if timestep_type != "weighted":
        return torch.ones_like(sigmas)
    grid_bell = _bell(torch.linspace(0.0, 1.0, GRID_SIZE))
    floor = grid_bell.min()
    return (_bell(sigmas) - floor) / (grid_bell - floor).mean()


def _bell(position: torch.Tensor) -> torch.Tensor:
    return torch.exp(-2 * (position - 0.5) ** 2)


def add_noise(clean: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Broadcast per-sample (B,) or per-element sigmas over `clean`."""
    while sigmas.ndim < clean.ndim:
        sigmas = sigmas.unsqueeze(-1)
    return (1 - sigmas) * clean + sigmas * noise


def velocity_target(clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - clean


def elementwise_loss(prediction: torch.Tensor, target: torch.Tensor, loss_type: str) -> torch.Tensor:
    """The per-element loss of `train.loss_type`: mse (squared error) or mae (absolute error)."""
    difference = prediction.float() - target.float()
    if loss_type == "mse":
        return difference**2
    if loss_type == "mae":
        return difference.abs()
    raise ValueError(f"unknown loss_type {loss_type!r}")


def masked_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    loss_type: str = "mse",
    clip_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean `loss_type` loss over the elements where `mask` is 1 (all of them without a mask).

    `clip_weights` (B,) scale each clip's losses (the `weighted` timestep weighting).
    """
    losses = elementwise_loss(prediction, target, loss_type)
    if clip_weights is not None:
        losses = losses * clip_weights.to(losses).reshape(-1, *([1] * (losses.ndim - 1)))
    if mask is None:
        return losses.mean()
    mask = mask.to(losses.dtype).expand_as(losses)
    return (losses * mask).sum() / mask.sum().clamp(min=1)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the elements where `mask` is 1 (all of them without a mask)."""
    return masked_loss(prediction, target, mask)
