"""ConsoleSink: one ``[VERBOSE]`` line per record on stdout, indented by span depth.

A line stays readable in a terminal: at most LINE_LIMIT characters. When the fields make it longer,
the longest ones are summarised (a mapping as its key count and first keys, a list as its length
and first item, a tensor as its shape and dtype, a long string as its start and length, a JSON
string as what it holds) until it fits, and a line still too long is cut with a note. trace.jsonl keeps every field whole. Text
meant to be read line by line (a `Lines` field, such as the memory plan, or a string with line
breaks) follows the record's line, one console line per line of text, as the dry run prints it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from toolkit.trace.describe import MAX_ITEMS, Lines
from toolkit.trace.records import TraceRecord
from toolkit.trace.sinks.base import TraceSink

PREFIX = "[VERBOSE] "
INDENT = "  "
LINE_LIMIT = 300
"""Characters of a record's console line, prefix and indentation included (text blocks below it aside)."""
_CUT = " ... (cut; trace.jsonl has the whole record)"


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
    blocks = {key: _block_lines(value) for key, value in record.fields.items() if _is_block(value)}
    fields = {key: value for key, value in record.fields.items() if key not in blocks}
    memory = format_memory(record.memory, record.memory_change) if record.memory else ""
    line = fit_line(PREFIX + INDENT * record.depth + " ".join(parts), fields, memory)
    # Multi-line text (an inspection block's tree, the memory plan) follows the line, one level deeper.
    indent = "\n" + PREFIX + INDENT * (record.depth + 1)
    return line + "".join(indent + indent.join(lines) for lines in blocks.values())


def _is_block(value: Any) -> bool:
    return isinstance(value, Lines) or (isinstance(value, str) and "\n" in value)


def _block_lines(value: Any) -> list[str]:
    return list(value) if isinstance(value, Lines) else value.splitlines()


def fit_line(head: str, fields: dict[str, Any], tail: str = "") -> str:
    """``head key=value ... tail`` in at most LINE_LIMIT characters: the longest fields summarised first."""
    shown = {key: format_value(value) for key, value in fields.items()}

    def join() -> str:
        return " ".join([head, *(f"{key}={text}" for key, text in shown.items()), *([tail] if tail else [])])

    line = join()
    # Structured values (mappings, lists, JSON text) go first, longest first; then long text, first keeping
    # more of its start: a plain string is often the record's own words, kept as long as the line allows.
    structured = [key for key in shown if not _is_plain_text(fields[key])]
    text = [key for key in shown if _is_plain_text(fields[key])]
    for keys, keep in ((structured, 0), (text, 48), (text, 24)):
        for key in sorted(keys, key=lambda name: len(shown[name]), reverse=True):
            if len(line) <= LINE_LIMIT:
                return line
            summary = summarise(fields[key], keep)
            if len(summary) < len(shown[key]):
                shown[key] = summary
                line = join()
    return line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - len(_CUT)] + _CUT


def _is_plain_text(value: Any) -> bool:
    return isinstance(value, str) and _json_container(value) is None


def summarise(value: Any, keep: int = 24) -> str:
    """A long field in a few words: what kind of value, how big, and its first items (a long text: its first
    `keep` characters and its length)."""
    if isinstance(value, str):
        parsed = _json_container(value)
        if parsed is not None:
            return summarise(parsed)
        return value[:keep] + f"...({len(value):,} chars)" if len(value) > keep + 16 else value
    if isinstance(value, dict) and {"shape", "dtype"} <= value.keys():  # a tensor: its shape and dtype
        return f"{value['shape']} {str(value['dtype']).removeprefix('torch.')}"
    if isinstance(value, dict) and not {"class", "params"} <= value.keys():
        keys = list(value)
        return "{" + f"{len(keys)} keys: " + ", ".join(str(key) for key in keys[:3]) + (", ..." if len(keys) > 3 else "") + "}"
    if isinstance(value, (list, tuple)):
        first = format_value(value[0]) if value else ""
        first = first if len(first) <= 40 else first[:37] + "..."
        return f"[{len(value)} items" + (f": {first}" + (", ..." if len(value) > 1 else "") if value else "") + "]"
    return format_value(value)


def _json_container(text: str) -> dict | list | None:
    if not text.startswith(("{", "[")):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


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
