"""Trace sinks: where records go. Each is a small class behind ``TraceSink``."""

from __future__ import annotations

import warnings

from toolkit.trace.config import TraceConfig
from toolkit.trace.errors import TraceSinkWarning
from toolkit.trace.sinks.base import TraceSink
from toolkit.trace.sinks.chrome import ChromeTraceSink
from toolkit.trace.sinks.console import ConsoleSink
from toolkit.trace.sinks.jsonl import JsonlSink

JSONL_FILE_NAME = "trace.jsonl"
CHROME_TRACE_FILE_NAME = "trace.json"

__all__ = [
    "CHROME_TRACE_FILE_NAME",
    "JSONL_FILE_NAME",
    "ChromeTraceSink",
    "ConsoleSink",
    "JsonlSink",
    "TraceSink",
    "build_sinks",
]


def build_sinks(config: TraceConfig, origin_ts: float) -> list[TraceSink]:
    """The sinks a config asks for; a file sink that cannot be created is left out with a warning."""
    sinks: list[TraceSink] = [ConsoleSink()] if config.console else []
    if config.output_dir is None:
        return sinks
    try:
        config.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warnings.warn(
            f"Verbose trace: cannot create the trace folder {config.output_dir} ({error}); "
            f"{JSONL_FILE_NAME} and {CHROME_TRACE_FILE_NAME} will not be written. "
            "Point the training folder at a writable place to get them.",
            TraceSinkWarning,
            stacklevel=3,
        )
        return sinks
    for file_name, make_sink in (
        (JSONL_FILE_NAME, lambda path: JsonlSink(path)),
        (CHROME_TRACE_FILE_NAME, lambda path: ChromeTraceSink(path, origin_ts)),
    ):
        path = config.output_dir / file_name
        try:
            sinks.append(make_sink(path))
        except OSError as error:
            warnings.warn(
                f"Verbose trace: cannot write {path} ({error}); tracing goes on without it. "
                "Check the folder's permissions and free disk space.",
                TraceSinkWarning,
                stacklevel=3,
            )
    return sinks
