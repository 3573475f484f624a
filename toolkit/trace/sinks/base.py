"""TraceSink: the one interface every trace destination implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from toolkit.trace.records import TraceRecord


class TraceSink(ABC):
    """A destination for trace records (console, a file, ...).

    The tracer calls ``write`` under one lock, so a sink need not be thread-safe.
    A sink may raise from any method: the tracer drops it with one warning and
    goes on with the others, so sinks report failures instead of hiding them.
    """

    #: Short name used in warnings, e.g. "trace.jsonl".
    name: str = "sink"

    @abstractmethod
    def write(self, record: TraceRecord) -> None:
        """Record one trace record."""

    @abstractmethod
    def close(self) -> None:
        """Flush what is buffered and release files; called once."""
