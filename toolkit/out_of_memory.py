"""Recognising an out-of-memory failure by what each device's allocator raises.

- CUDA (and torch's other device allocators that report it as such): ``torch.OutOfMemoryError``.
- The CPU: torch's default CPU allocator raises a plain ``RuntimeError`` ("[enforce fail at
  alloc_cpu.cpp] ... DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes"),
  and numpy / Python raise ``MemoryError``.
- Older CUDA paths, ROCm (HIP) and MPS raise ``RuntimeError`` with "out of memory" in the message.

One helper, so every place that falls back or reports on out-of-memory agrees on what it is.
"""

from __future__ import annotations

import torch

# What the RuntimeErrors of allocators that do not raise torch.OutOfMemoryError say.
_ALLOCATOR_MESSAGES = (
    "defaultcpuallocator: can't allocate memory",  # torch's CPU allocator (c10/core/impl/alloc_cpu.cpp)
    "out of memory",  # "CUDA error: out of memory", "HIP out of memory", "MPS backend out of memory"
)


def is_out_of_memory(error: BaseException) -> bool:
    """True when `error` is an allocation failure on any device (CUDA, CPU, ROCm, MPS)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    if not isinstance(error, RuntimeError):
        return False
    message = str(error).lower()
    return any(marker in message for marker in _ALLOCATOR_MESSAGES)
