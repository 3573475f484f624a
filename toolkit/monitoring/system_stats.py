"""Readings of host and accelerator memory and CPU load, in gigabytes and percent.

One helper for the logger (`log_memory`) and the TensorBoard monitor
(`14_System`), so both report the same numbers under the same names.
torch is imported only when a CUDA reading is asked for, so importing this
module (and `toolkit.logging`) stays cheap.
"""

from __future__ import annotations

import os
import sys

import psutil

GIB = 1024**3


def process_memory() -> dict[str, float]:
    """This process's resident memory and the device memory torch holds.

    Keys: ``rss_gb`` always; ``gpu_allocated_gb``, ``gpu_reserved_gb`` and
    ``gpu_peak_gb`` (peak allocated since start or the last peak reset) only
    when CUDA is available, for the current device.
    """
    readings = {"rss_gb": psutil.Process(os.getpid()).memory_info().rss / GIB}
    readings.update(cuda_memory())
    return readings


def cuda_memory() -> dict[str, float]:
    """Allocated, reserved and peak CUDA memory of the current device; empty without CUDA.

    torch is only consulted when it is already imported: a process that never
    imported torch holds no CUDA memory, and importing it here would cost seconds.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return {}
    device = torch.cuda.current_device()
    return {
        "gpu_allocated_gb": torch.cuda.memory_allocated(device) / GIB,
        "gpu_reserved_gb": torch.cuda.memory_reserved(device) / GIB,
        "gpu_peak_gb": torch.cuda.max_memory_allocated(device) / GIB,
    }


def system_load() -> dict[str, float]:
    """Machine-wide CPU and RAM use plus this process's memory.

    ``cpu_percent`` is the load since the previous call (psutil's non-blocking
    mode), so the first reading of a process is 0.0.
    """
    ram = psutil.virtual_memory()
    readings = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "ram_used_gb": (ram.total - ram.available) / GIB,
        "ram_total_gb": ram.total / GIB,
        "ram_percent": ram.percent,
    }
    readings.update(process_memory())
    return readings
