"""TraceRecord: one line of the trace, as every sink receives it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RecordType = Literal["span_begin", "span_end", "event", "heartbeat"]


@dataclass
class TraceRecord:
    """One thing the tracer saw.

    ts is wall-clock seconds since the epoch, taken from a monotonic clock so
    that a span's begin and end agree with its duration. A span_begin carries
    the fields given when the span opened, its span_end the fields added with
    ``span.set``; span_id joins the two, parent_id names the enclosing span.
    """

    type: RecordType
    name: str
    ts: float
    depth: int
    pid: int
    tid: int
    fields: dict[str, Any] = field(default_factory=dict)
    span_id: int | None = None
    parent_id: int | None = None
    duration_s: float | None = None
    memory: dict[str, float] | None = None
    memory_change: dict[str, float] | None = None
    error: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The record as a dict that ``json.dumps(..., allow_nan=False)`` accepts."""
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    """Non-finite floats become the strings "nan", "inf", "-inf"; strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value
