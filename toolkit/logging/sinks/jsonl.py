"""metrics.jsonl: one JSON object per logged step."""

from __future__ import annotations

import json
import time
from pathlib import Path

from toolkit.logging.errors import LoggingError
from toolkit.logging.sinks.base import MetricsSink

METRICS_FILENAME = "metrics.jsonl"


class JsonlMetricsSink(MetricsSink):
    """Appends ``{"step": 3, "time": <unix s>, "metrics": {...}}`` lines to a file.

    Each line is flushed to the OS as it is written (by the logger's writer
    thread, within half a second of the step; ``time`` is when the values were
    logged), so a run that fails keeps every step it logged and a killed one
    loses at most the last half second. Non-finite values are written as
    ``NaN`` / ``Infinity``, which Python's ``json`` reads back.
    """

    name = "metrics.jsonl file"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        except OSError as error:
            raise LoggingError(
                f"Cannot open the metrics file {path}: {error.strerror or error}. "
                "Set log_dir to a writable folder or turn metrics off (enable_metrics=False)."
            ) from error

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.log_record(metrics, step, time.time())

    def log_record(self, metrics: dict[str, float], step: int, wall_time: float) -> None:
        """One line, stamped with the time the values were logged (not the later time the writer thread writes it)."""
        record = {"step": step, "time": round(wall_time, 3), "metrics": metrics}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
