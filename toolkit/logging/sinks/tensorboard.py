"""Metrics of the logger into the TensorBoard monitor's event file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.logging.sinks.base import MetricsSink

if TYPE_CHECKING:
    from toolkit.monitoring.tensorboard import TensorBoardMonitor


class TensorBoardSink(MetricsSink):
    """Hands logged metrics to ``TensorBoardMonitor.log_metrics``, which files them
    under its categories (``throughput/*`` in 05_Performance, ``memory/*`` in
    14_System, the rest in 01_Training). Closing the sink closes the monitor.
    """

    name = "TensorBoard writer"

    def __init__(self, monitor: TensorBoardMonitor) -> None:
        self.monitor = monitor

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.monitor.log_metrics(step, metrics)

    def flush(self) -> None:
        self.monitor.flush()

    def close(self) -> None:
        self.monitor.close()
