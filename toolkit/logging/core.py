"""UnifiedLogger: text logging, a progress bar with throughput, metrics and memory in one object."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from toolkit.logging.errors import LoggingError
from toolkit.logging.progress import ProgressTracker

if TYPE_CHECKING:
    from toolkit.logging.config import LogConfig
    from toolkit.logging.manager import LogManager
    from toolkit.logging.sinks import TensorBoardSink

SYSTEM_CATEGORY = "14_System"


class UnifiedLogger:
    """A named logger of this process.

    Text goes through a standard ``logging.Logger`` (so ``%``-style arguments
    are only formatted when a handler accepts the level). Metrics, progress
    throughput and memory readings go to the process's shared metrics tracker
    and sinks (``metrics.jsonl``, TensorBoard, W&B), which the ``LogManager``
    owns. ``finish()`` on the logger ``setup_logging`` returned closes all of
    them; on any other logger it closes that logger's progress bar and
    flushes.
    """

    def __init__(self, std_logger: logging.Logger, manager: LogManager, owns_process: bool = False) -> None:
        self.logger = std_logger
        self._manager = manager
        self._owns_process = owns_process
        self._progress: ProgressTracker | None = None

    @property
    def name(self) -> str:
        return self.logger.name

    @property
    def config(self) -> LogConfig:
        return self._manager.config

    @property
    def is_main_process(self) -> bool:
        return self._manager.is_main_process

    @property
    def tensorboard(self) -> TensorBoardSink:
        """The process's one TensorBoard writer; a disabled one (writes nothing) when TensorBoard is off."""
        return self._manager.tensorboard

    # text

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.debug(msg, *args, **_caller(kwargs))

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.info(msg, *args, **_caller(kwargs))

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.warning(msg, *args, **_caller(kwargs))

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.error(msg, *args, **_caller(kwargs))

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """An ERROR line with the traceback of the exception being handled."""
        self.logger.exception(msg, *args, **_caller(kwargs))

    def critical(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.critical(msg, *args, **_caller(kwargs))

    # progress

    def start_progress(self, total: int | None, desc: str = "", initial: int = 0, unit: str = "step") -> None:
        """Open a progress bar of ``total`` steps (closing this logger's previous one).

        The bar is drawn on the main process when progress and the console are
        on; throughput is measured on every process.
        """
        config = self._manager.config
        self.close_progress()
        self._progress = ProgressTracker(
            total,
            desc,
            window=config.progress_window,
            smoothing=config.progress_smoothing,
            position=config.progress_position,
            leave=config.progress_leave,
            show_bar=self._manager.is_main_process and config.enable_progress and config.enable_console,
            initial=initial,
            unit=unit,
        )

    def update_progress(self, n: int = 1, batch_size: int | None = None, **postfix: Any) -> dict[str, float]:
        """Advance the bar by ``n`` steps of ``batch_size`` samples and log the throughput metrics.

        Logs ``05_Performance/Samples_Per_Second`` (moving average),
        ``05_Performance/Batch_Time_ms``, ``05_Performance/Accumulated_Samples``
        and, with a total, ``05_Performance/ETA_s`` at the step they belong to:
        the index of the last step counted (0 after the first step of a fresh
        bar), the step its loss is logged at. Returns them. ``postfix`` values
        are shown after the bar.
        """
        if self._progress is None:
            raise LoggingError(
                f"update_progress was called on logger {self.name!r} before start_progress; "
                "call logger.start_progress(total, desc) before the loop."
            )
        throughput = self._progress.update(n, batch_size, **postfix)
        self.log_metrics(throughput, step=self._progress.done - 1)
        return throughput

    def close_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    # metrics

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> dict[str, float]:
        """Record numbers (or one-element tensors) at ``step`` and send them to every metrics sink.

        Without ``step`` the previous step + 1 is used. Returns the values as
        floats; nothing is recorded when metrics are off.
        """
        return self._manager.record_metrics(metrics, step)

    def get_average(self, name: str) -> float:
        """Mean of the last ``metrics_window`` values of ``name``."""
        return self._manager.metrics.get_average(name)

    def get_history(self, name: str) -> list[tuple[int, float]]:
        """Kept (step, value) pairs of ``name``, at most ``metrics_history_max``, oldest first."""
        return self._manager.metrics.get_history(name)

    def log_memory(self, step: int | None = None) -> dict[str, float]:
        """Log the trace's memory snapshot under 14_System: ``14_System/rss_mb`` and, with CUDA,
        ``cuda_allocated_mb``, ``cuda_reserved_mb`` and ``cuda_peak_mb``; returns them."""
        if not self._manager.config.enable_memory:
            return {}
        from toolkit.trace.memory import memory_snapshot  # imports torch: only when memory is asked for

        readings = {f"{SYSTEM_CATEGORY}/{name}": value for name, value in memory_snapshot().items()}
        return self.log_metrics(readings, step)

    # lifetime

    def flush(self) -> None:
        self._manager.flush()

    def finish(self) -> None:
        """Close the progress bar; on the process logger also close every sink and handler."""
        self.close_progress()
        if self._owns_process:
            self._manager.cleanup()
        else:
            self._manager.flush()

    def __enter__(self) -> UnifiedLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is not None:
            self.logger.error("Stopped by %s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, traceback))
        self.finish()


def _caller(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Attribute records to the code that called the wrapper, not to the wrapper."""
    kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
    return kwargs
