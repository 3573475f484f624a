"""Readings of host and accelerator memory and CPU load, in gigabytes and percent.

One helper for the logger (`log_memory`) and the TensorBoard monitor
(`14_System`), so both report the same numbers under the same names; the
memory itself is read by `toolkit.memory_readings`, as the trace reads it.
Importing this module (and `toolkit.logging`) does not import torch.
"""

from __future__ import annotations

import psutil

from toolkit.memory_readings import MemoryReading, read_memory

GIB = 1024**3


def process_memory() -> dict[str, float]:
    """This process's resident memory and the device memory torch holds.

    Keys: ``rss_gb`` always; ``gpu_allocated_gb``, ``gpu_reserved_gb`` and
    ``gpu_peak_gb`` (peak allocated since start or the last peak reset) only
    once this process has initialised CUDA, for the current device.
    """
    return _process_figures(read_memory())


def _process_figures(reading: MemoryReading) -> dict[str, float]:
    readings = {"rss_gb": reading.rss / GIB}
    if reading.cuda_allocated is not None:
        readings["gpu_allocated_gb"] = reading.cuda_allocated / GIB
        readings["gpu_reserved_gb"] = reading.cuda_reserved / GIB
        readings["gpu_peak_gb"] = reading.cuda_peak / GIB
    return readings


def system_load() -> dict[str, float]:
    """Machine-wide CPU and RAM use plus this process's memory.

    ``cpu_percent`` is the load since the previous call (psutil's non-blocking
    mode), so the first reading of a process is 0.0.
    """
    reading = read_memory()
    readings = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "ram_used_gb": reading.ram_used / GIB,
        "ram_total_gb": reading.ram_total / GIB,
        "ram_percent": 100.0 * reading.ram_used / reading.ram_total,
    }
    readings.update(_process_figures(reading))
    return readings
