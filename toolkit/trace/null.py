"""NullTracer: the tracer when verbose is off. Every call is a no-op."""

from __future__ import annotations

from typing import Any


class NullSpan:
    """The one shared do-nothing span: a context manager whose ``set`` ignores its fields."""

    __slots__ = ()

    def __enter__(self) -> NullSpan:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        return None

    def set(self, *lazy_fields: Any, **fields: Any) -> None:
        """Ignore the fields and never call the lazy ones; the null tracer records nothing."""


NULL_SPAN = NullSpan()


class NullTracer:
    """Same methods as ``Tracer``, costing one method call each.

    No formatting, no tensor statistics, no device sync, no threads, no files:
    call sites can trace unconditionally and pay nothing when verbose is off.
    """

    enabled = False

    def span(self, name: str, *lazy_fields: Any, **fields: Any) -> NullSpan:
        return NULL_SPAN

    def event(self, name: str, *lazy_fields: Any, **fields: Any) -> None:
        return None

    def should_trace_step(self, step: int) -> bool:
        return False

    def step_scope(self, step: int) -> NullSpan:
        return NULL_SPAN

    def close(self) -> None:
        return None
