"""ConsoleSink: one ``[VERBOSE]`` line per record on stdout, indented by span depth."""

from __future__ import annotations

import sys
from typing import Any

from toolkit.trace.describe import MAX_ITEMS
from toolkit.trace.records import TraceRecord
from toolkit.trace.sinks.base import TraceSink

PREFIX = "[VERBOSE] "
INDENT = "  "


class ConsoleSink(TraceSink):
    """Prints records to stdout with a plain write and flush.

    Writing to ``sys.stdout`` directly, not through ``logging``, makes the lines
    appear before logging is set up and right away when the process hangs.
    ``sys.stdout`` is looked up at each write so redirections made later apply.
    """

    name = "console"

    def write(self, record: TraceRecord) -> None:
        stream = sys.stdout
        stream.write(format_record(record) + "\n")
        stream.flush()

    def close(self) -> None:
        """Nothing to release: stdout belongs to the process."""


def format_record(record: TraceRecord) -> str:
    """The console line of a record, prefix and indentation included."""
    if record.type == "span_end":
        outcome = "done in" if record.error is None else f"failed ({record.error}) after"
        parts = [f"{record.name} {outcome} {record.duration_s:.3f}s"]
    elif record.type == "heartbeat":
        elapsed = record.fields.get("elapsed_s", 0.0)
        memory = format_memory(record.memory, None, separator=", ")
        return f"{PREFIX}{INDENT * record.depth}{record.name} still running (elapsed {elapsed:.1f}s, {memory})"
    else:
        parts = [record.name]
    blocks = {key: value for key, value in record.fields.items() if isinstance(value, str) and "\n" in value}
    parts.extend(f"{key}={format_value(value)}" for key, value in record.fields.items() if key not in blocks)
    if record.memory:
        parts.append(format_memory(record.memory, record.memory_change))
    line = PREFIX + INDENT * record.depth + " ".join(parts)
    # Multi-line text (an inspection block's tree) follows the line, indented one level deeper.
    indent = "\n" + PREFIX + INDENT * (record.depth + 1)
    return line + "".join(indent + indent.join(text.splitlines()) for text in blocks.values())


def format_memory(
    memory: dict[str, float], change: dict[str, float] | None, separator: str = " "
) -> str:
    """``rss=512.0MB (+12.0MB)``, with CUDA allocated and peak when the snapshot has them."""
    parts = [_megabytes("rss", memory["rss_mb"], change.get("rss_mb") if change else None)]
    if "cuda_allocated_mb" in memory:
        parts.append(
            _megabytes(
                "cuda",
                memory["cuda_allocated_mb"],
                change.get("cuda_allocated_mb") if change else None,
            )
        )
        parts.append(_megabytes("cuda_peak", memory["cuda_peak_mb"], None))
    return separator.join(parts)


def _megabytes(label: str, value: float, change: float | None) -> str:
    text = f"{label}={value:.1f}MB"
    if change is not None:
        text += f" ({change:+.1f}MB)"
    return text


def format_value(value: Any) -> str:
    """A described field value in a few words: tensors and modules compactly, long lists cut."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        if "shape" in value and "dtype" in value:
            return _format_tensor(value)
        if "class" in value and "params" in value:
            return _format_module(value)
        return "{" + ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        # describe() already cuts lists of tensors to MAX_ITEMS plus a "... more" entry;
        # lists of plain values arrive whole and are cut here, for the eye only.
        if len(value) <= MAX_ITEMS + 1:
            return "[" + ", ".join(format_value(item) for item in value) + "]"
        shown = [format_value(item) for item in value[:MAX_ITEMS]]
        shown.append(f"... {len(value) - MAX_ITEMS} more ({len(value)} total)")
        return "[" + ", ".join(shown) + "]"
    return str(value)


def _format_tensor(description: dict[str, Any]) -> str:
    dtype = str(description["dtype"]).removeprefix("torch.")
    parts = [str(description["shape"]), dtype, str(description["device"])]
    if "tensor_type" in description:
        parts.append(str(description["tensor_type"]))
    for key in ("min", "max", "mean"):
        if key in description:
            parts.append(f"{key}={format_value(description[key])}")
    if description.get("nan"):
        parts.append(f"nan={description['nan']:,}")
    if "stats_error" in description:
        parts.append(f"stats_error={description['stats_error']}")
    return " ".join(parts)


def _format_module(description: dict[str, Any]) -> str:
    return (
        f"{description['class']} params={description['params']:,} "
        f"trainable={description['trainable']:,} dtype={description['dtype']} "
        f"device={description['device']}"
    )
