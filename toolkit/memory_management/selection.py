"""Which layers to offload for a given share of their bytes.

Shared by `MemoryManager.attach` (real modules) and the memory plan (meta
modules), so the plan predicts exactly the layers the manager will offload.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from torch import nn

from toolkit.memory_management.errors import OffloadError


TORCH_KINDS = {nn.Linear: "linear", nn.Conv1d: "conv", nn.Conv2d: "conv", nn.Conv3d: "conv"}


def offloadable_kind(module: nn.Module) -> str | None:
    """"linear" or "conv" for a layer that offloading can manage, else None.

    Only classes that read their weights inside their own forward, all affine in their input
    (which `offloaded_forward` relies on). Exact classes, not subclasses: e.g.
    MultiheadAttention's ``out_proj`` (a Linear subclass) is read through its weight by its
    parent and must stay on the device. optimum-quanto's QLinear and QConv2d count too; a run that
    quantizes nothing never imports quanto (45 ms of its start-up), and then no layer can be one.
    """
    kind = TORCH_KINDS.get(type(module))
    quanto = sys.modules.get("optimum.quanto")
    if kind is not None or quanto is None:
        return kind
    return {quanto.QLinear: "linear", quanto.QConv2d: "conv"}.get(type(module))


def check_offload_percent(offload_percent: float, setting: str = "offload_percent") -> float:
    """`offload_percent` as a float in [0, 1], or an OffloadError naming `setting`."""
    value = float(offload_percent)
    if not 0.0 <= value <= 1.0:
        raise OffloadError(
            f"{setting} is {offload_percent}; it is a fraction of the layer bytes between 0.0 (offload nothing) "
            "and 1.0 (offload every Linear and Conv layer), e.g. 0.5."
        )
    return value


def offloaded_layer_count(layer_bytes: Sequence[int], offload_percent: float) -> int:
    """How many layers, taken from the first in module order, to offload.

    A layer is taken while taking it brings the offloaded bytes at least as close to
    ``offload_percent`` of the total as leaving it, so the achieved share is within half
    a layer of the asked one. 0.0 takes none and 1.0 takes all.
    """
    percent = check_offload_percent(offload_percent)
    target = percent * sum(layer_bytes)
    taken = 0
    offloaded = 0
    for size in layer_bytes:
        if offloaded + size / 2 > target:
            break
        offloaded += size
        taken += 1
    return taken
