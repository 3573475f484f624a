"""What a memory plan's numbers rest on, one line each, printed with the plan so a reader can check them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from toolkit.memory_management.plan_loading import LoadStep
from toolkit.memory_management.plan_result import GIB

if TYPE_CHECKING:
    from toolkit.memory_management.plan_result import ComponentPlan
    from toolkit.memory_management.plan_settings import MemoryPlanSettings


def assumptions(
    settings: MemoryPlanSettings, components: Mapping[str, ComponentPlan], steps: Sequence[LoadStep]
) -> list[str]:
    """The plan's assumptions for `settings`, naming the components and sizes they concern."""
    order = " -> ".join(step.component for step in steps)
    streamed = [name for name, c in components.items() if c.block.name != "whole component"]
    whole = [name for name in components if name not in streamed]
    lines = [
        f"Loading in this order: {order}. "
        + (f"{', '.join(streamed)} stream block by block; " if streamed else "")
        + (f"{', '.join(whole)} load whole (one block). " if whole else "")
        + "Each tensor is read from the checkpoint and cast to its load dtype; each module is quantized when asked "
        "and put where it stays as soon as it holds its tensors, while the next are read (at most the rest of a "
        "block ahead). Host peak = what earlier components left on the host + the loading component's host share "
        "+ its largest block in flight.",
        "The checkpoint's pages in the page cache are not counted: the kernel drops them when RAM runs short.",
    ]
    large_blocks = [
        f"{c.name} {c.block.name} {_gib(c.block.total)} ({_gib(c.block.load_bytes)} at {c.dtype}"
        + (f" + {_gib(c.block.quantized_bytes)} {c.qtype}" if c.block.quantized_bytes else "")
        + (f" - {_gib(c.block.kept_bytes)} kept on host" if c.block.kept_bytes else "")
        + ")"
        for c in components.values()
        if c.block.total >= GIB // 8
    ]
    if large_blocks:  # none on a small model: no line that lists nothing
        lines.append(f"Largest blocks in flight: {', '.join(large_blocks)}.")
    lines.append(_host_shares(settings, components))
    text_encoders = [c.name for c in components.values() if c.role == "text_encoder"]
    if text_encoders:
        lines.append(
            f"The {', '.join(text_encoders)} loads first and stays loaded until prompts are cached, then is "
            "unloaded (train.unload_text_encoder, cached text embeddings); it is resident while the rest loads."
        )
    return lines


def _host_shares(settings: MemoryPlanSettings, components: Mapping[str, ComponentPlan]) -> str:
    kept = [f"{c.name} {_gib(c.host_bytes)}" for c in components.values() if c.host_bytes]
    why = []
    if settings.low_vram:
        why.append("low_vram keeps every component but the denoiser on the host between uses")
    if settings.layer_offloading:
        why.append("layer offloading keeps its share of the linear/conv weights on the host")
    reason = "; ".join(why) if why else "no low_vram and no layer offloading: everything goes to the device"
    return (
        f"Kept on the host after loading: {', '.join(kept) or 'nothing'} ({reason}); every other block goes "
        "straight to the device as it arrives."
    )


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if size >= GIB // 100 else f"{size / 1024**2:.1f} MiB"
