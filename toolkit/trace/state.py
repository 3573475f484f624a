"""The per-process tracer: ``init_tracer`` once per job, ``get_tracer`` anywhere."""

from __future__ import annotations

import os
import sys

from toolkit.trace.config import TraceConfig
from toolkit.trace.errors import TraceConfigError
from toolkit.trace.null import NullTracer
from toolkit.trace.tracer import Tracer

_NULL_TRACER = NullTracer()
_tracer: Tracer | NullTracer = _NULL_TRACER


def init_tracer(config: TraceConfig, is_main_process: bool | None = None) -> Tracer | NullTracer:
    """Set and return this process's tracer, closing the previous one.

    Only the main process traces: other ranks, and any process when
    ``config.enabled`` is False, get the null tracer. With ``is_main_process``
    None the rank is read from accelerate's state when it is initialised,
    else from the RANK / LOCAL_RANK environment variables (unset means main).
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


def _is_main_process() -> bool:
    # Only ask accelerate if it is already imported: importing it just to learn
    # the rank would slow down every verbose start.
    accelerate_state = sys.modules.get("accelerate.state")
    if accelerate_state is not None and accelerate_state.PartialState._shared_state:
        return bool(accelerate_state.PartialState().is_main_process)
    for variable in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(variable)
        if value is None or value == "":
            continue
        try:
            return int(value) == 0
        except ValueError as error:
            raise TraceConfigError(
                f"The environment variable {variable}={value!r} is not a process rank; it must be an "
                "integer (0 for the main process). Unset it, or launch with accelerate/torchrun which set it."
            ) from error
    return True


def _forget_tracer_in_child() -> None:
    """A forked child (a DataLoader worker) traces nothing and must not touch the parent's files."""
    global _tracer
    _tracer = _NULL_TRACER


os.register_at_fork(after_in_child=_forget_tracer_in_child)
