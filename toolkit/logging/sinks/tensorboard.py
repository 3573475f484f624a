"""The run's one TensorBoard writer: a metrics sink that also takes the media the monitor hands it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.logging.errors import LoggingError
from toolkit.logging.sinks.base import MetricsSink


class TensorBoardSink(MetricsSink):
    """Owns the process's only ``SummaryWriter``.

    Every metric of the logger's stream is written as a scalar under its own
    name (a name is its TensorBoard tag, e.g. ``01_Training/Loss``), at the step
    it was logged with, so TensorBoard, ``metrics.jsonl`` and W&B hold the same
    numbers under the same names. Histograms, videos, audio and text (which are
    not numbers) are written through ``writer`` by whoever made them, into the
    same event file. ``TensorBoardSink.disabled()`` writes nothing and creates
    no file: what other ranks and runs without TensorBoard get.
    """

    name = "TensorBoard writer"

    def __init__(self, log_dir: str | Path, flush_every: int = 100) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir: Path | None = Path(log_dir)
        self.flush_every = flush_every
        self._last_flush_step = 0
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer: Any = SummaryWriter(log_dir=str(self.log_dir))
        except OSError as error:
            raise LoggingError(
                f"Cannot write TensorBoard events to {self.log_dir}: {error.strerror or error}. "
                "Point the log folder somewhere writable or set logging.use_tensorboard: false."
            ) from error

    @classmethod
    def disabled(cls) -> TensorBoardSink:
        sink = cls.__new__(cls)
        sink.log_dir = None
        sink.flush_every = 100
        sink._last_flush_step = 0
        sink._writer = None
        return sink

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    @property
    def writer(self) -> Any:
        """The SummaryWriter, for histograms, videos, audio and text; None when disabled or closed."""
        return self._writer

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._writer is None:
            return
        for tag, value in metrics.items():
            self._writer.add_scalar(tag, value, step)
        self.flush_if_due(step)

    def flush_if_due(self, step: int) -> None:
        """Flush when ``flush_every`` steps passed since the last flush (media writers call it too)."""
        if self._writer is not None and step >= self._last_flush_step + self.flush_every:
            self._writer.flush()
            self._last_flush_step = step

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file; later calls write nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
