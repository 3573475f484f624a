"""Host and device memory while a model loads, streamed: each component is filled block by block.

A component the model streams (`PlannedModel.block_patterns`) is built empty
(meta device) and filled from the checkpoint one block at a time (a module a
pattern names, such as ``transformer_blocks.7``; tensors outside every block
are grouped by the outermost module that holds no block): each tensor is read
and cast to its load dtype, and each module, once it holds its tensors, is
quantized when asked and put where it stays (device, or host for the offloaded
share and, with ``low_vram``, for the components that wait on the host) while
the next tensors are read, at most the largest block less the largest module
ahead (streamed_loading.py): the host never holds more of a component in
flight than its largest block at the load dtype plus its quantized copy. A
component that does not stream loads whole (it is one block). So, per
component in load order,

    host peak = what earlier components left on the host
              + this component's host share (all of it, at the worst moment: its last block)
              + its largest block in flight (load-dtype copy + quantized copy,
                less what of it stays on the host: that is in the host share).

The checkpoint's pages in the page cache are not counted: the kernel drops
them under pressure. Blocks are converted on the host and then moved, so the
device holds only what stays there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BlockInFlight:
    """The bytes one block adds on the host while it is read, cast and quantized.

    load_bytes: the block at its load dtype; quantized_bytes: its quantized copy (0 when not
    quantized); kept_bytes: what of it stays on the host (already in the component's host share).
    Quantizing a layer makes no copy beyond these (measured: benchmarks/bench_memory_plan_real_width.py).
    """

    name: str
    load_bytes: int
    quantized_bytes: int
    kept_bytes: int = 0

    @property
    def total(self) -> int:
        return self.load_bytes + self.quantized_bytes - self.kept_bytes


@dataclass(frozen=True)
class LoadStep:
    """One component's load: what was on the host before, what it keeps, its largest block in flight."""

    component: str
    resident_before: int
    host_share: int
    device_share: int
    block: BlockInFlight

    @property
    def host_peak(self) -> int:
        return self.resident_before + self.host_share + self.block.total


def layer_blocks(layer_names: Sequence[str], block_patterns: Sequence[str] | None) -> list[str]:
    """Each layer's block, grouped as the streamed loader groups tensors (streamed_loading.group_into_blocks).

    block_patterns None: the component loads whole, one block named "whole component".
    """
    from toolkit.memory_management.streamed_loading import group_into_blocks

    if block_patterns is None:
        return ["whole component"] * len(layer_names)
    # The loader groups tensor names; a layer's parameters share its module name.
    blocks = group_into_blocks([f"{name}.weight" for name in layer_names], block_patterns)
    block_of = {key[: -len(".weight")]: block for block, keys in blocks.items() for key in keys}
    return [block_of[name] for name in layer_names]


def largest_block(
    blocks: Sequence[str],
    load_bytes: Sequence[int],
    quantized_bytes: Sequence[int],
    kept_on_host: bool,
) -> BlockInFlight:
    """The block adding most bytes in flight; per layer: its block, bytes at load dtype, quantized bytes (0: not
    quantized). kept_on_host: the whole component stays on the host, so each block's final bytes are its own."""
    sums: dict[str, list[int]] = {}
    for block, loaded, quantized in zip(blocks, load_bytes, quantized_bytes):
        sizes = sums.setdefault(block, [0, 0, 0])
        sizes[0] += loaded
        sizes[1] += quantized
        sizes[2] += (quantized or loaded) if kept_on_host else 0
    candidates = [BlockInFlight(name, *sizes) for name, sizes in sums.items()]
    return max(candidates, key=lambda block: block.total, default=BlockInFlight("(no weights)", 0, 0))


def load_steps(shares: Mapping[str, tuple[int, int]], blocks: Mapping[str, BlockInFlight]) -> list[LoadStep]:
    """The load of each component in order; `shares`: name -> (host share, device share) once loaded."""
    steps, on_host = [], 0
    for name, (host_share, device_share) in shares.items():
        steps.append(LoadStep(name, on_host, host_share, device_share, blocks[name]))
        on_host += host_share
    return steps
