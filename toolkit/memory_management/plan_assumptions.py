"""What a memory plan's numbers rest on, one line each, printed with the plan so a reader can check them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from toolkit.memory_management.plan_loading import LoadStep

if TYPE_CHECKING:
    from toolkit.memory_management.plan import ComponentPlan
    from toolkit.memory_management.plan_settings import MemoryPlanSettings

GIB = 1024**3


def assumptions(
    settings: MemoryPlanSettings, components: Mapping[str, ComponentPlan], steps: Sequence[LoadStep]
) -> list[str]:
    """The plan's assumptions for `settings`, naming the components and sizes they concern."""
    order = " -> ".join(step.component for step in steps)
    lines = [
        f"Streamed loading, in this order: {order}. Each component is built empty and filled block by block "
        "from the memory-mapped checkpoint: a block is read at its stored dtype, converted or quantized, and put "
        "where it stays before the next is read. Host peak = what earlier components left on the host + the "
        "loading component's host share + its largest block in flight.",
        "The checkpoint's mapped pages are page cache, not counted: the kernel drops them when RAM runs short.",
        "Largest blocks in flight: "
        + ", ".join(
            f"{c.name} {c.block.name} {_gib(c.block.total)} ({_gib(c.block.read_bytes)} read"
            + (f" + {_gib(c.block.converted_bytes)} as {c.qtype or c.dtype})" if c.block.converted_bytes else ")")
            for c in components.values()
            if c.block.total >= GIB // 8
        )
        + ".",
        _host_shares(settings, components),
    ]
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
