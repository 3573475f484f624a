"""Machine-wide CPU and RAM load, for TensorBoard's 14_System.

This process's own memory (RSS, CUDA allocated/reserved/peak) is read by the
trace's `memory_snapshot` and logged by `logger.log_memory`, so each figure has
one reader and one name; the memory itself is read by `toolkit.memory_readings`,
as the trace reads it. Importing this module (and `toolkit.logging`) does not
import torch.
"""

from __future__ import annotations

import psutil

from toolkit.memory_readings import read_memory

GIB = 1024**3


def machine_load() -> dict[str, float]:
    """Machine-wide CPU and RAM use.

    ``cpu_percent`` is the load since the previous call (psutil's non-blocking
    mode), so the first reading of a process is 0.0.
    """
    reading = read_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "ram_used_gb": reading.ram_used / GIB,
        "ram_total_gb": reading.ram_total / GIB,
        "ram_percent": 100.0 * reading.ram_used / reading.ram_total,
    }
