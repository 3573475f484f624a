"""The one reader of host and device memory: psutil for RAM, torch.cuda's own counters for the GPU.

The trace (`toolkit.trace.memory`), the system stats of the logger and TensorBoard
(`toolkit.monitoring.system_stats`) and the latent-encoding monitor all read memory
here and only choose their units and names. GPU peaks come from torch's allocator
(`max_memory_allocated` since `reset_peak_memory_stats`), never from polling.

torch is only consulted when it is already imported, and CUDA only once this process
has initialised it: asking earlier would create a CUDA context (hundreds of MB and
seconds) just to report zeros. So importing this module stays cheap.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import psutil

_this_process = psutil.Process()


@dataclass(frozen=True)
class MemoryReading:
    """Memory at one moment, in bytes. The CUDA figures are None without an initialised CUDA device."""

    rss: int
    rss_peak: int | None  # highest RSS so far by the kernel's batched count (may trail rss by a few pages)
    ram_used: int  # total - available: what the machine cannot hand out now
    ram_available: int
    ram_total: int
    cuda_allocated: int | None = None
    cuda_reserved: int | None = None
    cuda_peak: int | None = None  # peak allocated since the start or the last reset_cuda_peak
    cuda_peak_reserved: int | None = None  # the same for reserved memory
    cuda_total: int | None = None


def read_memory() -> MemoryReading:
    """This process's RSS, the machine's RAM and, when CUDA is initialised, the current device's memory."""
    ram = psutil.virtual_memory()
    return MemoryReading(
        rss=_this_process.memory_info().rss,
        rss_peak=_peak_rss(),
        ram_used=ram.total - ram.available,
        ram_available=ram.available,
        ram_total=ram.total,
        **_cuda_figures(),
    )


def cuda_ready() -> bool:
    """True when torch is imported and this process has already initialised CUDA."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def _cuda_figures() -> dict[str, int]:
    if not cuda_ready():
        return {}
    cuda = sys.modules["torch"].cuda
    device = cuda.current_device()
    return {
        "cuda_allocated": cuda.memory_allocated(device),
        "cuda_reserved": cuda.memory_reserved(device),
        "cuda_peak": cuda.max_memory_allocated(device),
        "cuda_peak_reserved": cuda.max_memory_reserved(device),
        "cuda_total": cuda.get_device_properties(device).total_memory,
    }


def _peak_rss() -> int | None:
    """The kernel's high-water mark of this process's RSS: getrusage on Unix, psutil's peak_wset on Windows."""
    try:
        import resource
    except ImportError:
        return getattr(_this_process.memory_info(), "peak_wset", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def reset_cuda_peak() -> None:
    """Start new CUDA peaks (torch.cuda.reset_peak_memory_stats) on the current device; nothing without CUDA.

    The counters are process-wide, so a peak read afterwards covers what ran since this call.
    """
    if cuda_ready():
        cuda = sys.modules["torch"].cuda
        cuda.reset_peak_memory_stats(cuda.current_device())
