"""Where each LTX-2 component lives: quantization at load, low_vram moves, layer offloading.

- `quantize` / `quantize_te`: the transformer / text encoder weights are quantized with
  optimum-quanto right after loading (on the CPU, before they move), then frozen.
- `low_vram`: the VAEs, vocoder, text encoder and connectors wait in host RAM and move to
  the device only for their work (`Placement.on_device`), and back after it.
- `layer_offloading`: a MemoryManager keeps a share of the transformer's (and the text
  encoder's) linear/conv weights in host RAM, bringing each in for its forward. For the
  transformer this happens after the LoRA is attached (`offload_transformer`).

Every move is a traced span with memory before and after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from toolkit.trace import get_tracer, memory_snapshot

# Components kept in host RAM between uses with low_vram.
IDLE_ON_CPU = ("text_encoder", "connectors", "vae", "audio_vae", "vocoder")


def load_device(name: str, config, compute_device: torch.device, te_device: torch.device) -> torch.device:
    """The device a component goes to right after loading."""
    if config.low_vram and name in IDLE_ON_CPU:
        return torch.device("cpu")
    if config.layer_offloading and name == "transformer":
        # The MemoryManager places it once the LoRA is attached.
        return torch.device("cpu")
    if config.layer_offloading and name == "text_encoder" and config.layer_offloading_text_encoder_percent > 0:
        return torch.device("cpu")
    return te_device if name in ("text_encoder", "connectors") else compute_device


def offload_split(config, compute_device: torch.device, block_count: int) -> Callable[[str], torch.device] | None:
    """Where each transformer block goes as it streams in, when layer offloading splits it between host and GPU.

    The MemoryManager offloads the first layers in module order (`offloaded_layer_count`); LTX-2's
    transformer blocks are all the same size, so the first `offloaded_layer_count([1] * blocks, percent)`
    blocks stay on the host and the others go straight to the GPU: the host never holds the GPU's share
    (the memory plan counts it so). `MemoryManager.attach` then settles each layer exactly, after the LoRA.
    None when nothing is split (no offloading, or a CPU run, where every block stays on the host anyway).
    """
    from toolkit.memory_management.selection import offloaded_layer_count

    if not splits_transformer(config, compute_device):
        return None
    offloaded_blocks = offloaded_layer_count([1] * block_count, config.layer_offloading_transformer_percent)

    def device_of(block_name: str) -> torch.device:
        index = _block_index(block_name)
        return torch.device("cpu") if index is not None and index < offloaded_blocks else compute_device

    return device_of


def splits_transformer(config, compute_device: torch.device) -> bool:
    """Whether a streamed transformer is split between host and GPU as it loads (`offload_split`)."""
    return bool(config.layer_offloading) and compute_device.type != "cpu"


def _block_index(block_name: str) -> int | None:
    """7 for "transformer_blocks.7"; None for what is outside the blocks (patch projections, norms ...)."""
    prefix, _, index = block_name.rpartition(".")
    return int(index) if prefix.endswith("transformer_blocks") and index.isdigit() else None


def quantize_after_load(name: str, component, config):
    """Quantize the transformer / text encoder when the config asks; returns the report or None."""
    from toolkit.quantize import quantize_module

    from .quantization_excludes import DEFAULT_EXCLUDE

    if name == "transformer" and config.quantize:
        return quantize_module(component, config.qtype, DEFAULT_EXCLUDE["transformer"], component="transformer")
    if name == "text_encoder" and config.quantize_te:
        return quantize_module(component, config.qtype_te, DEFAULT_EXCLUDE["text_encoder"], component="text_encoder")
    return None


def move_component(name: str, module: torch.nn.Module, device: torch.device) -> bool:
    """Move a whole component, traced with memory before and after; False when it was there already."""
    current = _device_of(module)
    if current is None or current == device:
        return False
    with get_tracer().span(
        "move_component", lambda: {"memory_before": memory_snapshot()}, component=name, source=current, target=device
    ) as span:
        module.to(device)
        span.set(lambda: {"memory_after": memory_snapshot()})
    return True


class Placement:
    """With low_vram: brings the components a phase works with to their working device for the phase, and sends
    them back to host RAM after it. Owned by LTX2Model and handed to each phase that needs it."""

    def __init__(self, config, components: dict, device: torch.device, te_device: torch.device):
        self.low_vram = config.low_vram
        self.components = components  # LTX2Model's: read at call time (a component loaded or unloaded since counts)
        self.device = device
        self.te_device = te_device

    @contextlib.contextmanager
    def on_device(self, *names: str) -> Iterator[None]:
        """The components `names` on their working device for the block (with low_vram; as they are otherwise)."""
        if not self.low_vram:
            yield
            return
        moved = []
        for name in names:
            module = self.components.get(name)
            if module is None or name not in IDLE_ON_CPU or getattr(module, "_ltx2_offloaded", False):
                continue
            target = self.te_device if name in ("text_encoder", "connectors") else self.device
            if move_component(name, module, target):
                moved.append((name, module))
        try:
            yield
        finally:
            for name, module in moved:
                move_component(name, module, torch.device("cpu"))


def offload_layers(name: str, module: torch.nn.Module, device: torch.device, percent: float):
    """Attach the MemoryManager to a component; returns its OffloadReport."""
    from toolkit.memory_management import MemoryManager

    report = MemoryManager.attach(module, device, percent)
    module._ltx2_offloaded = True
    return report


def _device_of(module: torch.nn.Module) -> torch.device | None:
    first = next(module.parameters(), None)
    return first.device if first is not None else None
