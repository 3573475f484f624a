"""The verbose layer: opt-in tracing of what the trainer and the model do.

    from toolkit.trace import get_tracer
    tracer = get_tracer()
    with tracer.span("encode_audio", clip=path, waveform=waveform) as span:
        ...
        span.set(mel=mel, latents=latents)
    tracer.event("quantization", module="blocks.0.attn1.to_q", qtype="qint8")
    span.set(lambda: {"truncated": count_truncated(prompts)})  # costly fields: a callable, run only when on

Off by default: ``get_tracer()`` is a ``NullTracer`` whose calls do nothing.
``init_tracer(TraceConfig(enabled=True, output_dir=...))`` turns it on for the
main process, printing ``[VERBOSE]`` lines and writing ``trace.jsonl`` and
``trace.json`` (open the latter in https://ui.perfetto.dev).
"""

from __future__ import annotations

from toolkit.trace.config import TraceConfig
from toolkit.trace.describe import Lines, describe, describe_module, describe_tensor
from toolkit.trace.errors import TraceConfigError, TraceSinkWarning
from toolkit.trace.memory import memory_snapshot
from toolkit.trace.null import NullTracer
from toolkit.trace.state import get_tracer, init_tracer, reset_tracer
from toolkit.trace.tracer import Tracer

__all__ = [
    "Lines",
    "NullTracer",
    "TraceConfig",
    "TraceConfigError",
    "TraceSinkWarning",
    "Tracer",
    "describe",
    "describe_module",
    "describe_tensor",
    "get_tracer",
    "init_tracer",
    "memory_snapshot",
    "reset_tracer",
]
