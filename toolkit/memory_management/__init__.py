"""Layer offloading (MemoryManager) and the byte accounting it shares with quantization and the memory plan."""

from __future__ import annotations

from toolkit.memory_management.errors import MemoryPlanError, OffloadError, QuantizationError
from toolkit.memory_management.manager import MemoryManager
from toolkit.memory_management.report import ManagedModule, OffloadReport, UnmanagedModule
from toolkit.memory_management.tensors import module_bytes, parameter_bytes, tensor_bytes

__all__ = [
    "ManagedModule",
    "MemoryManager",
    "MemoryPlanError",
    "OffloadError",
    "OffloadReport",
    "QuantizationError",
    "UnmanagedModule",
    "module_bytes",
    "parameter_bytes",
    "tensor_bytes",
]
