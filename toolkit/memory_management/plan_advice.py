"""Which settings to change when a memory plan does not fit, found by trying them in turn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from toolkit.memory_management.plan_phases import PhaseTotal

if TYPE_CHECKING:
    from toolkit.memory_management.plan_settings import MemoryPlanSettings

Option = tuple[str, "MemoryPlanSettings"]


def suggest_changes(
    settings: MemoryPlanSettings,
    phases: list[PhaseTotal],
    evaluate: Callable[[MemoryPlanSettings], list[PhaseTotal]],
) -> tuple[list[str], MemoryPlanSettings, list[PhaseTotal]]:
    """The changes to make, the settings with them applied, and the phase totals those give.

    Changes are tried in order of cost: quantize, low_vram, then offloading in tenths, smallest
    first. Of a step's options the first that fits is kept, else the one leaving least over
    budget, and only when it shrinks what one memory is over by without growing the other's:
    low_vram and offloading trade device memory for host RAM.
    """
    suggestions: list[str] = []
    over = _over_by_memory(phases)
    for step in (_quantize_transformer, _quantize_text_encoder, _low_vram, _offload_transformer, _offload_te):
        if over == (0, 0):
            break
        chosen: tuple[str, MemoryPlanSettings, list[PhaseTotal], tuple[int, int]] | None = None
        for description, candidate in step(settings):
            candidate_phases = evaluate(candidate)
            candidate_over = _over_by_memory(candidate_phases)
            if _better(candidate_over, over) and (chosen is None or sum(candidate_over) < sum(chosen[3])):
                chosen = (description, candidate, candidate_phases, candidate_over)
            if candidate_over == (0, 0):
                break
        if chosen is not None:
            suggestions.append(chosen[0])
            settings, phases, over = chosen[1], chosen[2], chosen[3]
    return suggestions, settings, phases


def _over_by_memory(phases: list[PhaseTotal]) -> tuple[int, int]:
    """(device, host) bytes over budget, summed over phases so that a change helping any phase counts."""
    device = sum(phase.over for phase in phases if phase.memory == "device")
    host = sum(phase.over for phase in phases if phase.memory == "host")
    return device, host


def _better(candidate: tuple[int, int], current: tuple[int, int]) -> bool:
    no_worse = all(new <= old for new, old in zip(candidate, current))
    return no_worse and candidate != current


def _quantize_transformer(s: MemoryPlanSettings) -> list[Option]:
    return [] if s.quantize else [("set model.quantize: true", replace(s, quantize=True))]


def _quantize_text_encoder(s: MemoryPlanSettings) -> list[Option]:
    return [] if s.quantize_te else [("set model.quantize_te: true", replace(s, quantize_te=True))]


def _low_vram(s: MemoryPlanSettings) -> list[Option]:
    return [] if s.low_vram else [("set model.low_vram: true", replace(s, low_vram=True))]


TRANSFORMER_PERCENT = "layer_offloading_transformer_percent"
TEXT_ENCODER_PERCENT = "layer_offloading_text_encoder_percent"


def _offload_transformer(s: MemoryPlanSettings) -> list[Option]:
    return _offload_options(s, TRANSFORMER_PERCENT, TEXT_ENCODER_PERCENT)


def _offload_te(s: MemoryPlanSettings) -> list[Option]:
    return _offload_options(s, TEXT_ENCODER_PERCENT, TRANSFORMER_PERCENT)


def _offload_options(s: MemoryPlanSettings, setting: str, other: str) -> list[Option]:
    """Offload percents above the current one, smallest first: each tenth costs speed.

    Turning offloading on sets the other component's percent to 0 (its config default is 1.0),
    so the suggestion changes one thing at a time and says so.
    """
    current = getattr(s, setting) if s.layer_offloading else 0.0
    options = []
    for tenth in range(1, 11):
        percent = tenth / 10
        if percent <= current + 1e-9:
            continue
        if s.layer_offloading:
            description = f"raise model.{setting} to {percent:g}"
            candidate = replace(s, **{setting: percent})
        else:
            description = f"set model.layer_offloading: true, model.{setting}: {percent:g}, model.{other}: 0"
            candidate = replace(s, layer_offloading=True, **{setting: percent, other: 0.0})
        options.append((description, candidate))
    return options
