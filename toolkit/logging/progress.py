"""A progress bar that also measures throughput: samples/sec, batch time, ETA."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from toolkit.logging.metrics import metric_value

# The names are TensorBoard tags in seed 004's 05_Performance category; metrics.jsonl and W&B use the same.
SAMPLES_PER_SEC = "05_Performance/Samples_Per_Second"
BATCH_TIME_MS = "05_Performance/Batch_Time_ms"
ACCUMULATED_SAMPLES = "05_Performance/Accumulated_Samples"
ETA_SEC = "05_Performance/ETA_s"


class ProgressTracker:
    """One tqdm bar plus the throughput numbers of the steps it counted.

    ``samples_per_sec`` is an exponential moving average (``smoothing`` is the
    weight of the newest step), ``batch_time_ms`` is the newest step's time,
    and the ETA uses the mean step time over the last ``window`` updates, so one
    slow step (a checkpoint save) does not swing it. The bar is only drawn when
    ``show_bar``; the numbers are measured either way.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        *,
        window: int = 100,
        smoothing: float = 0.3,
        position: int = 0,
        leave: bool = True,
        show_bar: bool = True,
        initial: int = 0,
        unit: str = "step",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.total = total
        self.done = initial
        self.accumulated_samples = 0
        self.samples_per_sec: float | None = None
        self._smoothing = smoothing
        self._step_times: deque[float] = deque(maxlen=window)
        self._clock = clock
        self._last_time = clock()
        self._lock = threading.Lock()
        self._bar = tqdm(
            total=total,
            desc=desc,
            initial=initial,
            position=position,
            leave=leave,
            unit=unit,
            disable=not show_bar,
            dynamic_ncols=True,
        )

    def update(self, n: int = 1, batch_size: int | None = None, **postfix: Any) -> dict[str, float]:
        """Count ``n`` steps of ``batch_size`` samples each (1 when None); returns the throughput metrics.

        Extra keyword arguments are shown after the bar (``loss=0.12``).
        """
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._last_time, 1e-9)
            self._last_time = now
            samples = n * (batch_size if batch_size is not None else 1)
            self.done += n
            self.accumulated_samples += samples
            newest_rate = samples / elapsed
            if self.samples_per_sec is None:
                self.samples_per_sec = newest_rate
            else:
                self.samples_per_sec = self._smoothing * newest_rate + (1 - self._smoothing) * self.samples_per_sec
            step_time = elapsed / n
            self._step_times.append(step_time)
            metrics = {
                SAMPLES_PER_SEC: self.samples_per_sec,
                BATCH_TIME_MS: step_time * 1000.0,
                ACCUMULATED_SAMPLES: float(self.accumulated_samples),
            }
            if self.total is not None:
                mean_step_time = sum(self._step_times) / len(self._step_times)
                metrics[ETA_SEC] = max(self.total - self.done, 0) * mean_step_time
            shown = {key: _shown(key, value) for key, value in postfix.items()}
            shown["samples/s"] = f"{self.samples_per_sec:.3g}"
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(n)
            return metrics

    def close(self) -> None:
        self._bar.close()


def _shown(key: str, value: Any) -> Any:
    """Numbers and one-element tensors as floats (tqdm formats them); anything else as given."""
    if isinstance(value, str):
        return value
    return metric_value(key, value)
