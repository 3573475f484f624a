"""memory_snapshot: how much host and device memory this process holds right now, in MB, for the trace."""

from __future__ import annotations

import torch

from toolkit.memory_readings import read_memory

_MB = 1024 * 1024


def memory_snapshot() -> dict[str, float]:
    """Process RSS in MB, plus CUDA allocated/reserved/peak MB when CUDA is there.

    Read by `toolkit.memory_readings` (the project's one memory reader). Before this
    process initialised CUDA the CUDA figures are reported as 0.0: reading them would
    create a CUDA context just to report zeros.
    """
    reading = read_memory()
    snapshot = {"rss_mb": reading.rss / _MB}
    if torch.cuda.is_available():
        snapshot["cuda_allocated_mb"] = (reading.cuda_allocated or 0) / _MB
        snapshot["cuda_reserved_mb"] = (reading.cuda_reserved or 0) / _MB
        snapshot["cuda_peak_mb"] = (reading.cuda_peak or 0) / _MB
    return snapshot


def memory_change(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """After minus before, for each figure both snapshots have."""
    return {key: after[key] - before[key] for key in after if key in before}
