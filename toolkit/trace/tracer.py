"""Tracer: the enabled verbose layer. Times spans, records events, feeds the sinks."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from toolkit import distributed
from toolkit.trace.config import TraceConfig
from toolkit.trace.describe import LazyFields, describe_fields
from toolkit.trace.errors import TraceSinkWarning
from toolkit.trace.heartbeat import Heartbeat
from toolkit.trace.memory import memory_change, memory_snapshot
from toolkit.trace.null import NULL_SPAN, NullSpan
from toolkit.trace.records import TraceRecord
from toolkit.trace.sinks import TraceSink, build_sinks
from toolkit.trace.span import Span

MAX_ERROR_CHARS = 200


class Tracer:
    """Records spans and events to its sinks (console, trace.jsonl, trace.json).

    Build it through ``init_tracer`` so there is one per process. Spans nest per
    thread; one lock serialises sink writes. A sink that raises is dropped with
    one ``TraceSinkWarning`` and the traced code never sees the error. ``close``
    runs at exit if it was not called before.
    """

    enabled = True

    def __init__(self, config: TraceConfig, sinks: list[TraceSink] | None = None) -> None:
        self.config = config
        self._wall_origin = time.time()
        self._clock_origin = time.perf_counter()
        self._sinks = build_sinks(config, self._wall_origin) if sinks is None else list(sinks)
        self._sinks_lock = threading.Lock()
        self._open_spans: dict[int, Span] = {}
        self._open_spans_lock = threading.Lock()
        self._thread_state = threading.local()
        self._span_ids = itertools.count(1)
        self._pid = os.getpid()
        self._closed = False
        atexit.register(self.close)
        self.event(
            "trace_start",
            output_dir=config.output_dir,
            sinks=[sink.name for sink in self._sinks],
            every_n_steps=config.every_n_steps,
            first_steps=config.first_steps,
            heartbeat_s=config.heartbeat_s,
            resume_from_step=config.resume_from_step,
            rank=distributed.rank(),
            world_size=distributed.world_size(),
        )
        self._heartbeat = Heartbeat(self._beat, config.heartbeat_s) if config.heartbeat_s > 0 else None

    @property
    def sink_names(self) -> list[str]:
        """Names of the sinks still in use (a failed sink is no longer listed)."""
        with self._sinks_lock:
            return [sink.name for sink in self._sinks]

    def span(self, name: str, *lazy_fields: LazyFields, **fields: Any) -> Span | NullSpan:
        """A context manager that times a phase and records memory before and after it.

        ``lazy_fields`` are callables returning more fields; they run only here, in the enabled
        tracer, so a field that costs work (a tokenizer call, a reduction) costs nothing when off.
        """
        if getattr(self._thread_state, "muted", False):
            return NULL_SPAN
        return Span(self, name, fields, lazy_fields)

    def event(self, name: str, *lazy_fields: LazyFields, **fields: Any) -> None:
        """Record a point in time with its fields (``lazy_fields`` as in ``span``), indented under the current span."""
        if getattr(self._thread_state, "muted", False):
            return
        described = describe_fields(fields, lazy_fields)
        stack = self._span_stack()
        self._emit(
            TraceRecord(
                type="event",
                name=name,
                ts=self._wall_time(time.perf_counter()),
                depth=len(stack),
                pid=self._pid,
                tid=threading.get_native_id(),
                fields=described,
                parent_id=stack[-1].span_id if stack else None,
            )
        )

    def should_trace_step(self, step: int) -> bool:
        """True for the first ``first_steps`` steps, then every ``every_n_steps``-th step."""
        return step < self.config.first_steps or step % self.config.every_n_steps == 0

    @contextlib.contextmanager
    def step_scope(self, step: int) -> Iterator[bool]:
        """Hot loops: inside, this thread records only when ``should_trace_step(step)``.

        Everything a step calls (the model's spans included) stays quiet on the
        steps between traced ones, so a 100k-step run's trace stays readable.
        """
        traced = self.should_trace_step(step)
        previous = getattr(self._thread_state, "muted", False)
        self._thread_state.muted = previous or not traced
        try:
            yield traced
        finally:
            self._thread_state.muted = previous

    def close(self) -> None:
        """Stop the heartbeat, flush and close the sinks. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.stop()
        with self._sinks_lock:
            sinks, self._sinks = self._sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception as error:
                _warn_sink_failed(sink, error, "closing")
        atexit.unregister(self.close)

    def _begin_span(self, span: Span) -> None:
        stack = self._span_stack()
        span.span_id = next(self._span_ids)
        span.parent_id = stack[-1].span_id if stack else None
        span.depth = len(stack)
        span.tid = threading.get_native_id()
        described = describe_fields(span.fields, span.lazy_fields)
        span.memory_before = memory_snapshot()
        span.started = span.last_beat = time.perf_counter()
        stack.append(span)
        with self._open_spans_lock:
            self._open_spans[span.span_id] = span
        self._emit(self._span_record(span, "span_begin", span.started, described, span.memory_before))

    def _end_span(self, span: Span, error: BaseException | None) -> None:
        ended = time.perf_counter()
        stack = self._span_stack()
        if span in stack:  # spans left out of order (e.g. in generators) are still removed
            stack.remove(span)
        with self._open_spans_lock:
            self._open_spans.pop(span.span_id, None)
        memory_after = memory_snapshot()
        record = self._span_record(span, "span_end", ended, span.result_fields, memory_after)
        record.duration_s = ended - span.started
        record.memory_change = memory_change(span.memory_before, memory_after)
        if error is not None:
            record.error = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        self._emit(record)

    def _beat(self) -> None:
        """Emit a heartbeat for each innermost span open longer than ``heartbeat_s``."""
        now = time.perf_counter()
        interval_s = self.config.heartbeat_s
        with self._open_spans_lock:
            open_spans = list(self._open_spans.values())
        parents = {span.parent_id for span in open_spans}
        for span in open_spans:
            if span.span_id in parents or now - span.last_beat < interval_s:
                continue
            span.last_beat = now
            record = self._span_record(span, "heartbeat", now, {"elapsed_s": now - span.started}, memory_snapshot())
            self._emit(record)

    def _span_record(
        self, span: Span, record_type: str, clock: float, fields: dict[str, Any], memory: dict[str, float]
    ) -> TraceRecord:
        return TraceRecord(
            type=record_type,  # type: ignore[arg-type]
            name=span.name,
            ts=self._wall_time(clock),
            depth=span.depth,
            pid=self._pid,
            tid=span.tid,
            fields=fields,
            span_id=span.span_id,
            parent_id=span.parent_id,
            memory=memory,
        )

    def _emit(self, record: TraceRecord) -> None:
        with self._sinks_lock:
            for sink in list(self._sinks):
                try:
                    sink.write(record)
                except Exception as error:
                    self._sinks.remove(sink)
                    _drop_sink(sink, error)

    def _span_stack(self) -> list[Span]:
        stack = getattr(self._thread_state, "spans", None)
        if stack is None:
            stack = self._thread_state.spans = []
        return stack

    def _wall_time(self, clock: float) -> float:
        """Wall-clock seconds from the monotonic clock, so begin + duration == end exactly."""
        return self._wall_origin + (clock - self._clock_origin)


def _drop_sink(sink: TraceSink, error: Exception) -> None:
    try:
        sink.close()
    except Exception as close_error:
        error.add_note(f"closing it afterwards also failed: {type(close_error).__name__}: {close_error}")
    _warn_sink_failed(sink, error, "writing")


def _warn_sink_failed(sink: TraceSink, error: Exception, action: str) -> None:
    notes = "; ".join(getattr(error, "__notes__", []))
    warnings.warn(
        f"Verbose trace: the {sink.name} sink failed while {action} ({type(error).__name__}: {error}"
        f"{'; ' + notes if notes else ''}); it is dropped and tracing goes on with the other sinks. "
        "Check free disk space and the trace folder's permissions.",
        TraceSinkWarning,
        stacklevel=2,
    )
