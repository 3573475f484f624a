"""The run's one TensorBoard writer: a metrics sink that also takes the media the monitor hands it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.logging.errors import LoggingError
from toolkit.logging.sinks.base import MetricsSink

# Buckets per histogram: TensorBoard's own default (tensorboard.plugins.histogram.summary_v2). add_histogram's
# bins="tensorflow" stored about 500 exponential buckets per LoRA tensor, 6.7 MB for the 896 tensors of the
# 8-block benchmark model at every diagnostic step; TensorBoard checksums each event in pure Python on the
# writer's thread, which held the training loop's GIL for 0.7 s each time. With 30: 0.5 MB and 0.06 s.
HISTOGRAM_BUCKETS = 30


class TensorBoardSink(MetricsSink):
    """Owns the process's only ``SummaryWriter``.

    Every metric of the logger's stream is written as a scalar under its own
    name (a name is its TensorBoard tag, e.g. ``01_Training/Loss``), at the step
    it was logged with, so TensorBoard, ``metrics.jsonl`` and W&B hold the same
    numbers under the same names. Histograms, videos, audio and text (which are
    not numbers) are written through ``writer`` by whoever made them, into the
    same event file. ``TensorBoardSink.disabled()`` writes nothing and creates
    no file: what other ranks and runs without TensorBoard get.

    The scalars of one ``log`` call are one event (a summary with a value per
    tag) and the histograms of one ``add_histograms`` call another: a step's
    numbers cost one write, not one per tag. The scalars reach it on the logger's
    writer thread: to have them all written out, flush the log manager (it waits for
    that thread, then flushes its sinks, this one included).
    """

    name = "TensorBoard writer"

    def __init__(self, log_dir: str | Path, flush_every: int = 100) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from toolkit.logging.sinks.tensorboard_checksum import use_c_checksums

        use_c_checksums()  # TensorBoard's Python checksum held the loop's GIL for 1.2 s per 10 MB sample video
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
        self.log_record(metrics, step, None)

    def log_record(self, metrics: dict[str, float], step: int, wall_time: float | None) -> None:
        """The values as one event at ``step``, stamped ``wall_time`` (now when None)."""
        if self._writer is None:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        # What SummaryWriter.add_scalar writes for each tag (a simple_value), all in one event.
        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in metrics.items()]
        self._writer.file_writer.add_summary(Summary(value=values), step, wall_time)
        self.flush_if_due(step)

    def add_histograms(self, histograms: Mapping[str, Any], step: int) -> None:
        """Histograms of several tensors or arrays in one event at ``step`` (one write instead of one per tensor,
        which held the step up once TensorBoard's own queue of 10 events was full), each in HISTOGRAM_BUCKETS
        equal buckets between its min and max (``add_histogram(..., bins=HISTOGRAM_BUCKETS)``)."""
        if self._writer is None or not histograms:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard.summary import histogram

        values = [value for tag, data in histograms.items() for value in histogram(tag, data, HISTOGRAM_BUCKETS).value]
        self._writer.file_writer.add_summary(Summary(value=values), step)
        self.flush_if_due(step)

    def flush_if_due(self, step: int) -> None:
        """Flush when ``flush_every`` steps passed since the last flush (media writers call it too)."""
        if self._writer is not None and step >= self._last_flush_step + self.flush_every:
            self._writer.flush()
            self._last_flush_step = step

    def flush(self) -> None:
        """Write out everything given to this writer so far."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Write out everything given to this writer so far and close the event file; later calls write nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
