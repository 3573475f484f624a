"""The per-process tracer: ``init_tracer`` once per job, ``get_tracer`` anywhere."""

from __future__ import annotations

import os

from toolkit.distributed import is_main_process as _is_main_process
from toolkit.trace.config import TraceConfig
from toolkit.trace.null import NullTracer
from toolkit.trace.tracer import Tracer

_NULL_TRACER = NullTracer()
_tracer: Tracer | NullTracer = _NULL_TRACER


def init_tracer(config: TraceConfig, is_main_process: bool | None = None) -> Tracer | NullTracer:
    """Set and return this process's tracer, closing the previous one.

    Only the main process traces: other ranks, and any process when
    ``config.enabled`` is False, get the null tracer. With ``is_main_process``
    None, ``toolkit.distributed`` says (accelerate's state, else RANK / LOCAL_RANK).
    """
    global _tracer
    reset_tracer()
    if config.enabled and (is_main_process if is_main_process is not None else _is_main_process()):
        _tracer = Tracer(config)
    return _tracer


def get_tracer() -> Tracer | NullTracer:
    """This process's tracer; the null tracer until ``init_tracer`` enables one."""
    return _tracer


def reset_tracer() -> None:
    """Close the current tracer and go back to the null tracer (end of a job, tests)."""
    global _tracer
    previous, _tracer = _tracer, _NULL_TRACER
    previous.close()


def _forget_tracer_in_child() -> None:
    """A forked child (a DataLoader worker) traces nothing and must not touch the parent's files."""
    global _tracer
    _tracer = _NULL_TRACER


os.register_at_fork(after_in_child=_forget_tracer_in_child)
