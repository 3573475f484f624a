"""JsonlSink: trace.jsonl, one JSON object per record, flushed as it goes."""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.trace.records import TraceRecord
from toolkit.trace.sinks.base import TraceSink


class JsonlSink(TraceSink):
    """Appends each record to a JSON-lines file and flushes it, so a crashed run keeps every line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._file = open(path, "w", encoding="utf-8")

    def write(self, record: TraceRecord) -> None:
        self._file.write(json.dumps(record.to_json_dict(), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
