"""The usual strategy chain for a diffusers-style VAE: direct on the device, tiled, then on the CPU.

    latents, report = encode_with_fallback(clip, pixels, vae_strategies(vae, device))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from toolkit.monitoring.latents import EncodeStrategy
from toolkit.trace import get_tracer

_TILING_SWITCHES = ("use_tiling", "use_framewise_encoding", "use_framewise_decoding")


def vae_strategies(vae: torch.nn.Module, device: torch.device, start_tiled: bool = False) -> list[EncodeStrategy]:
    """direct on `device`, tiled on `device`, then untiled on the CPU, for a VAE with
    `encode(x).latent_dist` and diffusers' tiling switches.

    `start_tiled` leaves direct out (the config asked for tiling from the start). Tiled turns on
    spatial tiling and framewise (temporal) tiling; diffusers' LTX VAEs read
    `use_framewise_decoding` in encode too, so all three switches are set. Each strategy puts
    the switches (and, for the CPU one, the VAE's device) back as they were.
    """

    def encode_on(target: torch.device, tiled: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        def encode(pixels: torch.Tensor) -> torch.Tensor:
            with _tiling(vae, tiled), _vae_on(vae, target):
                return vae.encode(pixels.to(target, vae.dtype)).latent_dist.mode()

        return encode

    cpu = torch.device("cpu")
    strategies = [
        ("direct", encode_on(device, False)),
        ("tiled", encode_on(device, True)),
        ("cpu", encode_on(cpu, False)),
    ]
    return strategies[1:] if start_tiled else strategies


@contextlib.contextmanager
def _tiling(vae: torch.nn.Module, enabled: bool) -> Iterator[None]:
    saved = {name: getattr(vae, name) for name in _TILING_SWITCHES if hasattr(vae, name)}
    for name in saved:
        setattr(vae, name, enabled)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(vae, name, value)


@contextlib.contextmanager
def _vae_on(vae: torch.nn.Module, device: torch.device) -> Iterator[None]:
    current = next(vae.parameters()).device
    if _same_device(current, torch.device(device)):
        yield
        return
    with get_tracer().span("move_vae_for_encode", source=current, target=device):
        vae.to(device)
    try:
        yield
    finally:
        vae.to(current)


def _same_device(first: torch.device, second: torch.device) -> bool:
    """`cuda` and `cuda:0` are the same device when 0 is the current one."""
    if first.type != second.type:
        return False
    if first.type != "cuda":
        return True
    current = torch.cuda.current_device()
    first_index = first.index if first.index is not None else current
    return first_index == (second.index if second.index is not None else current)
