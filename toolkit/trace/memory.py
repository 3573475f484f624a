"""memory_snapshot: how much host and device memory this process holds right now."""

from __future__ import annotations

import psutil
import torch

_MB = 1024 * 1024
_this_process = psutil.Process()


def memory_snapshot() -> dict[str, float]:
    """Process RSS in MB, plus CUDA allocated/reserved/peak MB when CUDA is there.

    The CUDA figures are read only once this process has initialised CUDA: asking
    earlier would create a CUDA context (hundreds of MB and seconds) just to
    report zeros, so before that they are reported as 0.0.
    """
    snapshot = {"rss_mb": _this_process.memory_info().rss / _MB}
    if torch.cuda.is_available():
        initialised = torch.cuda.is_initialized()
        snapshot["cuda_allocated_mb"] = torch.cuda.memory_allocated() / _MB if initialised else 0.0
        snapshot["cuda_reserved_mb"] = torch.cuda.memory_reserved() / _MB if initialised else 0.0
        snapshot["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / _MB if initialised else 0.0
    return snapshot


def memory_change(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """After minus before, for each figure both snapshots have."""
    return {key: after[key] - before[key] for key in after if key in before}
