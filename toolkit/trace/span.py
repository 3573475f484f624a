"""Span: one timed phase of the enabled tracer, used as a context manager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolkit.trace.describe import LazyFields, describe_fields

if TYPE_CHECKING:
    from toolkit.trace.tracer import Tracer


class Span:
    """A phase being timed: ``with tracer.span("encode_audio", clip=path) as span:``.

    The tracer fills in the bookkeeping (id, depth, start time, memory before)
    when the block is entered and records the end when it is left, with the
    error type if the block raised; the error always propagates.
    """

    __slots__ = (
        "_tracer",
        "name",
        "fields",
        "lazy_fields",
        "result_fields",
        "span_id",
        "parent_id",
        "depth",
        "tid",
        "started",
        "last_beat",
        "memory_before",
    )

    def __init__(
        self, tracer: Tracer, name: str, fields: dict[str, Any], lazy_fields: tuple[LazyFields, ...] = ()
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.fields = fields
        self.lazy_fields = lazy_fields
        self.result_fields: dict[str, Any] = {}
        self.span_id = 0
        self.parent_id: int | None = None
        self.depth = 0
        self.tid = 0
        self.started = 0.0
        self.last_beat = 0.0
        self.memory_before: dict[str, float] = {}

    def set(self, *lazy_fields: LazyFields, **fields: Any) -> None:
        """Add fields known only inside the block (output shapes, counts); described right away.

        ``lazy_fields`` are callables returning more fields, called here (never by the null span).
        """
        self.result_fields.update(describe_fields(fields, lazy_fields))

    def __enter__(self) -> Span:
        self._tracer._begin_span(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: Any) -> bool:
        self._tracer._end_span(self, exc)
        return False
