"""Metric values with windowed averages and a bounded history."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from toolkit.logging.errors import LoggingError


def metric_value(name: str, value: Any) -> float:
    """A metric as a float: numbers, numpy scalars and one-element tensors.

    A tensor is read with ``.item()``, which waits for the device; log tensors
    only at the steps you log.
    """
    if isinstance(value, (bool, int, float)):
        return float(value)
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    if size == 1 and hasattr(value, "item"):
        return float(value.item())
    raise LoggingError(
        f"Metric {name!r} is a {type(value).__name__}"
        f"{'' if size is None else f' with {size} elements'}; "
        "log a number or a one-element tensor (reduce it first, e.g. loss.mean())."
    )


class MetricsTracker:
    """Latest value, average of the last ``window`` values and history of each metric.

    The history keeps at most ``history_max`` (step, value) pairs per metric,
    dropping the oldest, so a 100k-step run holds bounded memory. Safe to use
    from several threads.
    """

    def __init__(self, window: int, keep_history: bool = True, history_max: int = 10_000) -> None:
        self._window = window
        self._keep_history = keep_history
        self._history_max = history_max
        self._recent: dict[str, deque[float]] = {}
        self._history: dict[str, deque[tuple[int, float]]] = {}
        self._lock = threading.Lock()

    def update(self, metrics: Mapping[str, Any], step: int) -> dict[str, float]:
        """Record one value per metric at ``step``; returns them as floats."""
        values = {name: metric_value(name, value) for name, value in metrics.items()}
        with self._lock:
            for name, value in values.items():
                self._recent.setdefault(name, deque(maxlen=self._window)).append(value)
                if self._keep_history:
                    self._history.setdefault(name, deque(maxlen=self._history_max)).append((step, value))
        return values

    def get_average(self, name: str) -> float:
        """Mean of the last ``window`` values of ``name`` (NaN values make it NaN)."""
        with self._lock:
            recent = self._values_of(name)
            return math.fsum(recent) / len(recent)

    def get_latest(self, name: str) -> float:
        with self._lock:
            return self._values_of(name)[-1]

    def get_history(self, name: str) -> list[tuple[int, float]]:
        """The kept (step, value) pairs of ``name``, oldest first; empty when history is off."""
        with self._lock:
            self._values_of(name)
            return list(self._history.get(name, ()))

    def averages(self) -> dict[str, float]:
        with self._lock:
            return {name: math.fsum(recent) / len(recent) for name, recent in self._recent.items()}

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._recent)

    def _values_of(self, name: str) -> deque[float]:
        recent = self._recent.get(name)
        if recent is None:
            known = ", ".join(sorted(self._recent)) or "none yet"
            raise LoggingError(f"No metric named {name!r} has been logged; logged metrics: {known}.")
        return recent
