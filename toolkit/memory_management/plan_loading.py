"""Host and device memory while a model loads, streamed: each component is filled block by block.

The loader builds each component empty (meta device) and fills it from the
memory-mapped checkpoint one block at a time (a numbered block such as
``transformer_blocks.7``, or one layer outside the blocks): the block is read
at its stored dtype, converted to its load dtype or quantized, and put where
it stays (device, or host for the offloaded share and, with ``low_vram``,
for the components that wait on the host) before the next block is read.
So, per component in load order,

    host peak = what earlier components left on the host
              + this component's host share (all of it, at the worst moment: its last block)
              + its largest block in flight (read bytes, plus the converted copy when it differs).

The checkpoint's pages are page cache, not counted: the kernel drops them
under pressure. Blocks are converted on the host and then moved, so the
device holds only what stays there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BLOCK_NAME = re.compile(r"^(.*?\.\d+)(?:\.|$)")
"""A layer's block: its name up to the first numbered module (`transformer_blocks.7.attn1.to_q` -> `transformer_blocks.7`)."""


@dataclass(frozen=True)
class BlockInFlight:
    """The bytes one block holds while it is read and converted."""

    name: str
    read_bytes: int
    converted_bytes: int

    @property
    def total(self) -> int:
        return self.read_bytes + self.converted_bytes


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


def block_of(layer_name: str) -> str:
    match = BLOCK_NAME.match(layer_name)
    return match.group(1) if match else layer_name


def largest_block(layer_names: Sequence[str], read_bytes: Sequence[int], converted_bytes: Sequence[int]) -> BlockInFlight:
    """The block with most bytes in flight; `converted_bytes`: a layer's copy at its load dtype or qtype
    (0 for a layer placed as read)."""
    blocks: dict[str, list[int]] = {}
    for name, read, converted in zip(layer_names, read_bytes, converted_bytes):
        sizes = blocks.setdefault(block_of(name), [0, 0])
        sizes[0] += read
        sizes[1] += converted
    if not blocks:
        return BlockInFlight("(no weights)", 0, 0)
    name, (read, loaded) = max(blocks.items(), key=lambda item: sum(item[1]))
    return BlockInFlight(name, read, loaded)


def load_steps(
    shares: Mapping[str, tuple[int, int]], blocks: Mapping[str, BlockInFlight]
) -> list[LoadStep]:
    """The load of each component in order; `shares`: name -> (host share, device share) once loaded."""
    steps, on_host = [], 0
    for name, (host_share, device_share) in shares.items():
        steps.append(LoadStep(name, on_host, host_share, device_share, blocks[name]))
        on_host += host_share
    return steps
