"""The real bytes a tensor, a module or a model holds, quantized weights included.

A quantized weight from optimum-quanto (``WeightQBytesTensor``,
``WeightQBitsTensor``, ``TinyGemmWeightQBitsTensor``) is a tensor subclass
whose ``numel() * element_size()`` is the size of the *logical* weight, not of
what it stores: its int8 / float8 / packed uint4 data and its scales (and
shifts) are inner tensors listed by ``__tensor_flatten__``. Every byte count in
the project (quantization report, offload report, memory plan checks) goes
through `tensor_bytes`, so they all agree with what the allocator holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


def leaf_tensors(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """The plain tensors that hold a tensor's data: itself, or a subclass's inner tensors, recursively."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is None:
        yield tensor
        return
    inner_names, _ = flatten()
    for name in inner_names:
        inner = getattr(tensor, name)
        if inner is not None:
            yield from leaf_tensors(inner)


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes of data a tensor stores (packed data plus scales and shifts for quantized weights)."""
    return sum(leaf.numel() * leaf.element_size() for leaf in leaf_tensors(tensor))


def module_bytes(module: nn.Module, recurse: bool = True) -> int:
    """Bytes of a module's parameters and buffers, each shared tensor counted once."""
    return _unique_bytes(_module_tensors(module, recurse))


def parameter_bytes(module: nn.Module, recurse: bool = True) -> int:
    """Bytes of a module's parameters only (what layer offloading keeps on the host), shared ones once."""
    return _unique_bytes(module.parameters(recurse=recurse))


def _unique_bytes(tensors: Iterator[torch.Tensor]) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor_bytes(tensor)
    return total


def _module_tensors(module: nn.Module, recurse: bool) -> Iterator[torch.Tensor]:
    yield from (parameter for parameter in module.parameters(recurse=recurse) if parameter is not None)
    yield from (buffer for buffer in module.buffers(recurse=recurse) if buffer is not None)
