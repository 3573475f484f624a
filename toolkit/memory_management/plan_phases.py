"""What sits in host RAM and device memory during each phase of a LoRA run, by component role.

Phases, in the order they happen (roles: plan_components.ROLES):
- loading (host): components stream in one by one (plan_loading.py); the
  peak is what earlier components left on the host, plus the share of the
  one loading that stays on the host, plus its largest block in flight.
- loading (device): what every component put on the device.
- caching prompts (device): the text encoder and the prompt adapter run;
  without low_vram every other component is already on the device too.
- training (device): the denoiser, the LoRA weights, their gradients and
  AdamW's state; without low_vram the prompt adapter and decoders stay on the
  device (the text encoder is unloaded after caching).
- training (host): offloaded layers, plus the idle components with low_vram.
- sampling (device): the denoiser with its LoRA and the optimizer state
  (sampling happens between training steps), the prompt adapter and the
  decoders; with low_vram denoising and decoding take turns on the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from toolkit.memory_management.plan_loading import LoadStep

GIB = 1024**3
IDLE_ROLES = ("prompt_adapter", "decoder")
"""Roles that do no work during a training step."""


class _Component(Protocol):
    stored_bytes: int
    loaded_bytes: int
    offloaded_bytes: int
    dequantized_bytes: int

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
    roles: Mapping[str, str],
    steps: Sequence[LoadStep],
    lora: _Lora,
    low_vram: bool,
    device_budget: int | None,
    host_budget: int | None,
) -> list[PhaseTotal]:
    """Host and device totals of every phase (see the module docstring); `steps`: the loads in order."""
    named = _Roles(roles)
    return [
        _loading_host(steps, host_budget),
        PhaseTotal("loading", "device", tuple((s.component, s.device_share) for s in steps), device_budget),
        _caching_prompts(components, named, low_vram, device_budget),
        _training_device(components, named, lora, low_vram, device_budget),
        _training_host(components, named, low_vram, host_budget),
        _sampling(components, named, lora, low_vram, device_budget),
    ]


class _Roles:
    def __init__(self, roles: Mapping[str, str]) -> None:
        self.roles = roles

    def __call__(self, *wanted: str) -> tuple[str, ...]:
        """Component names playing any of `wanted`, in load order."""
        return tuple(name for name, role in self.roles.items() if role in wanted)


def _loading_host(steps: Sequence[LoadStep], budget: int | None) -> PhaseTotal:
    if not steps:
        return PhaseTotal("loading", "host", (), budget, moment="peak")
    worst = max(steps, key=lambda step: step.host_peak)
    parts = (
        ("loaded before it, on host", worst.resident_before),
        (f"{worst.component} kept on host", worst.host_share),
        (f"{worst.component} block in flight ({worst.block.name})", worst.block.total),
    )
    return PhaseTotal("loading", "host", parts, budget, moment=f"peak at {worst.component}")


def _caching_prompts(components: Mapping[str, _Component], named: _Roles, low_vram: bool, budget: int | None) -> PhaseTotal:
    names = named("text_encoder", "prompt_adapter") if low_vram else tuple(components)
    parts = _device_parts(components, names) + _dequantized(components, named("text_encoder"))
    return PhaseTotal("caching prompts", "device", parts, budget)


def _training_device(
    components: Mapping[str, _Component], named: _Roles, lora: _Lora, low_vram: bool, budget: int | None
) -> PhaseTotal:
    idle = () if low_vram else named(*IDLE_ROLES)
    parts = _device_parts(components, (*named("denoiser"), *idle)) + _dequantized(components, named("denoiser")) + (
        ("LoRA weights (fp32)", lora.weight_bytes),
        ("LoRA gradients (fp32)", lora.grad_bytes),
        ("AdamW state (2 x fp32)", lora.optimizer_bytes),
    )
    return PhaseTotal("training", "device", parts, budget)


def _training_host(components: Mapping[str, _Component], named: _Roles, low_vram: bool, budget: int | None) -> PhaseTotal:
    parts = [(f"{name} offloaded layers", components[name].offloaded_bytes) for name in named("denoiser")]
    if low_vram:
        parts += [(f"{name} (idle)", components[name].loaded_bytes) for name in named(*IDLE_ROLES)]
    return PhaseTotal("training", "host", tuple(parts), budget)


def _sampling(
    components: Mapping[str, _Component], named: _Roles, lora: _Lora, low_vram: bool, budget: int | None
) -> PhaseTotal:
    training_state = (("LoRA weights (fp32)", lora.weight_bytes), ("AdamW state (2 x fp32)", lora.optimizer_bytes))
    running = _dequantized(components, named("denoiser"))
    denoising = _device_parts(components, named("denoiser", "prompt_adapter")) + training_state + running
    decoding = _device_parts(components, named("decoder")) + training_state
    if not low_vram:
        everything = _device_parts(components, named("denoiser", "prompt_adapter", "decoder")) + training_state + running
        return PhaseTotal("sampling", "device", everything, budget)
    if sum(size for _, size in denoising) >= sum(size for _, size in decoding):
        return PhaseTotal("sampling", "device", denoising, budget, moment="denoising")
    return PhaseTotal("sampling", "device", decoding, budget, moment="decoding")


def _dequantized(components: Mapping[str, _Component], names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """A quantized component's largest layer, dequantized for the moment it runs."""
    return tuple((f"{name} layer dequantized to run", components[name].dequantized_bytes) for name in names if components[name].dequantized_bytes)


def _device_parts(components: Mapping[str, _Component], names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((name, components[name].device_bytes) for name in names)
