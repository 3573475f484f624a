"""JsonlSink: trace.jsonl, one JSON object per record, flushed as it goes.

The file is appended to, never truncated: a resumed run adds its records after
the first run's, each run starting with its own ``trace_start`` record.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.trace.records import TraceRecord
from toolkit.trace.sinks.base import TraceSink


class JsonlSink(TraceSink):
    """Appends each record to a JSON-lines file and flushes it, so a crashed run keeps every line
    and a resumed run keeps the lines of the runs before it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._file = open(path, "a", encoding="utf-8")
        if self._file.tell() > 0 and not _ends_with_newline(path):
            self._file.write("\n")  # a run killed mid-line must not glue its last line to our first

    def write(self, record: TraceRecord) -> None:
        self._file.write(json.dumps(record.to_json_dict(), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as file:
        file.seek(-1, 2)
        return file.read(1) == b"\n"
