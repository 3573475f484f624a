"""ChromeTraceSink: trace.json in Chrome Trace Event format, a timeline for Perfetto.

Open it at https://ui.perfetto.dev or chrome://tracing. Spans are "X" (complete)
events, trace events "i" (instant) events, memory figures "C" (counter) events.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from toolkit.atomic_write import atomic_write
from toolkit.trace.errors import TraceSinkWarning
from toolkit.trace.records import TraceRecord, json_safe
from toolkit.trace.sinks.base import TraceSink

_MICROSECONDS = 1_000_000


class ChromeTraceSink(TraceSink):
    """Keeps the events in memory and rewrites the whole file atomically now and then.

    The file is always valid JSON: each rewrite goes to a temporary file that
    replaces the old one. Rewrites happen on a write at least ``flush_interval_s``
    after the previous one (stretched to 20x the time a rewrite takes, so a long
    run spends at most ~5% of its tracing time on this file) and at ``close``;
    ``flush_interval_s=0`` rewrites on every write.
    Spans still open at a rewrite appear as "B" (begin) events, so a run that
    hangs or is killed shows where it was.

    A file left by an earlier run (a resumed training) is kept: its events are
    loaded first and the new ones follow on the same time axis (the first run's
    origin is stored under ``otherData``). A file that is not readable trace JSON
    is moved aside to ``trace.json.unreadable`` with a warning.
    """

    def __init__(self, path: Path, origin_ts: float, flush_interval_s: float = 2.0) -> None:
        self.path = path
        self.name = str(path)
        self._flush_interval_s = flush_interval_s
        self._events: list[str] = []
        self._origin_ts = self._load_previous_run(origin_ts)
        self._events.append(
            json.dumps({"ph": "M", "name": "process_name", "pid": os.getpid(), "args": {"name": "ltx2-trace"}})
        )
        self._open_spans: dict[int, TraceRecord] = {}
        self._next_flush = 0.0
        self._dirty = False
        self._rewrite()

    def write(self, record: TraceRecord) -> None:
        if record.type == "span_begin":
            if record.span_id is not None:
                self._open_spans[record.span_id] = record
        elif record.type == "span_end":
            self._add(self._complete_event(record))
        else:
            label = record.name if record.type == "event" else f"{record.name} still running"
            self._add(self._event(record, "i", label, s="t", args=record.fields))
        if record.memory:
            self._add(self._event(record, "C", "memory_mb", args=record.memory))
        self._dirty = True
        if self._flush_interval_s == 0 or time.monotonic() >= self._next_flush:
            self._rewrite()

    def close(self) -> None:
        if self._dirty:
            self._rewrite()

    def _complete_event(self, end: TraceRecord) -> dict[str, Any]:
        begin = self._open_spans.pop(end.span_id, None) if end.span_id is not None else None
        duration_s = end.duration_s or 0.0
        start_ts = begin.ts if begin is not None else end.ts - duration_s
        args: dict[str, Any] = dict(begin.fields) if begin is not None else {}
        args.update(end.fields)
        if end.error is not None:
            args["error"] = end.error
        if end.memory_change:
            args["memory_change_mb"] = end.memory_change
        event = self._event(end, "X", end.name, args=args)
        event["ts"] = self._microseconds(start_ts)
        event["dur"] = duration_s * _MICROSECONDS
        return event

    def _event(self, record: TraceRecord, phase: str, name: str, **extra: Any) -> dict[str, Any]:
        event = {"ph": phase, "name": name, "ts": self._microseconds(record.ts), "pid": record.pid, "tid": record.tid}
        event.update(extra)
        return event

    @property
    def _other_data(self) -> str:
        return json.dumps({"origin_unix_s": self._origin_ts})

    def _microseconds(self, ts: float) -> float:
        return (ts - self._origin_ts) * _MICROSECONDS

    def _add(self, event: dict[str, Any]) -> None:
        self._events.append(json.dumps(json_safe(event), allow_nan=False))

    def _load_previous_run(self, origin_ts: float) -> float:
        """Keep the events of an earlier run's file; returns the time origin to go on with."""
        if not self.path.exists():
            return origin_ts
        try:
            previous = json.loads(self.path.read_text(encoding="utf-8"))
            events = previous["traceEvents"]
            previous_origin = float(previous.get("otherData", {}).get("origin_unix_s", origin_ts))
            if not isinstance(events, list):
                raise TypeError("traceEvents is not a list")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            aside = self.path.with_name(self.path.name + ".unreadable")
            os.replace(self.path, aside)
            warnings.warn(
                f"Verbose trace: {self.path} is not a readable Chrome trace ({type(error).__name__}: {error}); "
                f"moved it to {aside} and started a new one.",
                TraceSinkWarning,
                stacklevel=4,
            )
            return origin_ts
        self._events.extend(json.dumps(event, allow_nan=False) for event in events)
        return previous_origin

    def _rewrite(self) -> None:
        started = time.monotonic()
        still_open = [
            json.dumps(json_safe(self._event(begin, "B", begin.name, args=begin.fields)), allow_nan=False)
            for begin in self._open_spans.values()
        ]
        body = ",\n".join(self._events + still_open)
        tail = f'\n],"displayTimeUnit":"ms","otherData":{self._other_data}}}\n'
        with atomic_write(self.path, durable=False) as temporary:  # rewritten every few seconds; see atomic_write
            temporary.write_text('{"traceEvents":[\n' + body + tail, encoding="utf-8")
        finished = time.monotonic()
        self._next_flush = finished + max(self._flush_interval_s, 20 * (finished - started))
        self._dirty = False
