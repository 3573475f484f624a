"""Machine-wide CPU and RAM load, for TensorBoard's 14_System.

This process's own memory (RSS, CUDA allocated/reserved/peak) is read by the
trace's `memory_snapshot` and logged by `logger.log_memory`, so each figure has
one reader and one name.
"""

from __future__ import annotations

import psutil

GIB = 1024**3


def machine_load() -> dict[str, float]:
    """Machine-wide CPU and RAM use.

    ``cpu_percent`` is the load since the previous call (psutil's non-blocking
    mode), so the first reading of a process is 0.0.
    """
    ram = psutil.virtual_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "ram_used_gb": (ram.total - ram.available) / GIB,
        "ram_total_gb": ram.total / GIB,
        "ram_percent": ram.percent,
    }
