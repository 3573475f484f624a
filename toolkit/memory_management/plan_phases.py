"""What sits in host RAM and device memory during each phase of a LoRA run on LTX-2.

Phases, in the order they happen:
- loading (host): components are read one by one at their stored dtype; the
  peak is the component being read plus what earlier components left on the
  host (their offloaded layers, or all of them with low_vram).
- caching prompts (device): the text encoder and the connectors run; without
  low_vram every other component is already on the device too.
- training (device): the transformer, the LoRA weights, their gradients and
  AdamW's state; without low_vram the connectors, VAEs and vocoder stay on the
  device (the text encoder is unloaded after caching).
- training (host): offloaded layers, plus the idle components with low_vram.
- sampling (device): the transformer with its LoRA and the optimizer state
  (sampling happens between training steps), the connectors, the VAEs and the
  vocoder; with low_vram denoising and decoding take turns on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

GIB = 1024**3
IDLE_DURING_TRAINING = ("connectors", "vae", "audio_vae", "vocoder")
DECODERS = ("vae", "audio_vae", "vocoder")


class _Component(Protocol):
    stored_bytes: int
    loaded_bytes: int
    offloaded_bytes: int

    @property
    def device_bytes(self) -> int: ...


class _Lora(Protocol):
    @property
    def weight_bytes(self) -> int: ...

    @property
    def grad_bytes(self) -> int: ...

    @property
    def optimizer_bytes(self) -> int: ...


@dataclass(frozen=True)
class PhaseTotal:
    """The bytes one memory holds at the peak of one phase, part by part, and its budget (None: unknown).

    moment: which part of the phase the peak is in ("peak", "denoising", "decoding"), or "".
    """

    phase: str
    memory: str  # "host" or "device"
    parts: tuple[tuple[str, int], ...]
    budget: int | None
    moment: str = ""

    @property
    def label(self) -> str:
        return f"{self.phase} ({self.moment})" if self.moment else self.phase

    @property
    def total(self) -> int:
        return sum(size for _, size in self.parts)

    @property
    def over(self) -> int:
        """Bytes over the budget; 0 when it fits or the budget is unknown."""
        return 0 if self.budget is None else max(0, self.total - self.budget)

    def shortfall(self) -> str:
        """One line for a total that stays over budget after every suggested change."""
        largest = max(self.parts, key=lambda part: part[1])[0] if self.parts else "nothing"
        return (
            f"{self.memory} memory during {self.label}: {self.total / GIB:.1f} GiB needed, {self.budget / GIB:.1f} GiB "
            f"available, {self.over / GIB:.1f} GiB over even with the changes above (largest part: {largest}); "
            + (
                "free host RAM (close other programs, add swap) or use a machine with more RAM."
                if self.memory == "host"
                else "use a device with more memory or a smaller qtype (qint4)."
            )
        )


def phase_totals(
    components: Mapping[str, _Component],
    lora: _Lora,
    low_vram: bool,
    device_budget: int | None,
    host_budget: int | None,
) -> list[PhaseTotal]:
    """Host and device totals of every phase (see the module docstring)."""
    return [
        _loading(components, low_vram, host_budget),
        _caching_prompts(components, low_vram, device_budget),
        _training_device(components, lora, low_vram, device_budget),
        _training_host(components, low_vram, host_budget),
        _sampling(components, lora, low_vram, device_budget),
    ]


def _loading(components: Mapping[str, _Component], low_vram: bool, budget: int | None) -> PhaseTotal:
    peak: tuple[tuple[str, int], ...] = ()
    on_host = 0
    for name, component in components.items():
        parts = ((f"{name} read at its stored dtype", component.stored_bytes), ("loaded before it, on host", on_host))
        if sum(size for _, size in parts) > sum(size for _, size in peak):
            peak = parts
        on_host += component.loaded_bytes if low_vram else component.offloaded_bytes
    if on_host > sum(size for _, size in peak):
        peak = (("every component loaded, on host", on_host),)
    return PhaseTotal("loading", "host", peak, budget, moment="peak")


def _caching_prompts(components: Mapping[str, _Component], low_vram: bool, budget: int | None) -> PhaseTotal:
    names = ("text_encoder", "connectors") if low_vram else tuple(components)
    return PhaseTotal("caching prompts", "device", _device_parts(components, names), budget)


def _training_device(
    components: Mapping[str, _Component], lora: _Lora, low_vram: bool, budget: int | None
) -> PhaseTotal:
    idle = () if low_vram else IDLE_DURING_TRAINING
    parts = _device_parts(components, ("transformer", *idle)) + (
        ("LoRA weights (fp32)", lora.weight_bytes),
        ("LoRA gradients (fp32)", lora.grad_bytes),
        ("AdamW state (2 x fp32)", lora.optimizer_bytes),
    )
    return PhaseTotal("training", "device", parts, budget)


def _training_host(components: Mapping[str, _Component], low_vram: bool, budget: int | None) -> PhaseTotal:
    parts = [(f"{name} offloaded layers", components[name].offloaded_bytes) for name in ("transformer",)]
    if low_vram:
        parts += [(f"{name} (idle)", components[name].loaded_bytes) for name in IDLE_DURING_TRAINING]
    return PhaseTotal("training", "host", tuple(parts), budget)


def _sampling(components: Mapping[str, _Component], lora: _Lora, low_vram: bool, budget: int | None) -> PhaseTotal:
    training_state = (("LoRA weights (fp32)", lora.weight_bytes), ("AdamW state (2 x fp32)", lora.optimizer_bytes))
    denoising = _device_parts(components, ("transformer", "connectors")) + training_state
    decoding = _device_parts(components, DECODERS) + training_state
    if not low_vram:
        everything = _device_parts(components, ("transformer", "connectors", *DECODERS)) + training_state
        return PhaseTotal("sampling", "device", everything, budget)
    if sum(size for _, size in denoising) >= sum(size for _, size in decoding):
        return PhaseTotal("sampling", "device", denoising, budget, moment="denoising")
    return PhaseTotal("sampling", "device", decoding, budget, moment="decoding")


def _device_parts(components: Mapping[str, _Component], names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((name, components[name].device_bytes) for name in names)
