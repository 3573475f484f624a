"""Which process of a run this is: its rank, the world size, whether it is the main process.

The one place that answers, for the tracer, the logger and the trainer alike.
accelerate's state answers once the run has made its ``Accelerator``; before
that (and in a run that never does) the variables that ``accelerate launch`` and
``torchrun`` set for each process do: ``RANK`` (else ``LOCAL_RANK``) and
``WORLD_SIZE``. Unset means a single process, which is the main one.

accelerate is only consulted when it is already imported: a process that never
imported it cannot have initialised its state, and importing it here would pull
in torch for every config check.
"""

from __future__ import annotations

import os
import sys

from toolkit.errors import ConfigError

RANK_VARIABLES = ("RANK", "LOCAL_RANK")


def rank() -> int:
    """This process's global rank (0 for the main process and for a single process)."""
    state = _accelerate_state()
    if state is not None:
        return int(state.process_index)
    for variable in RANK_VARIABLES:
        value = _int_variable(variable)
        if value is not None:
            return value
    return 0


def world_size() -> int:
    """How many processes train together (1 without a launcher)."""
    state = _accelerate_state()
    if state is not None:
        return int(state.num_processes)
    value = _int_variable("WORLD_SIZE")
    return 1 if value is None else value


def is_main_process() -> bool:
    """True for the process that owns files, the trace and the progress bar."""
    return rank() == 0


def rank_tag() -> str:
    """How other ranks' console lines start, e.g. ``[rank 1]``."""
    return f"[rank {rank()}]"


def _accelerate_state():
    state_module = sys.modules.get("accelerate.state")
    # Asked through accelerate's public `is_initialized()` (true once an Accelerator exists):
    # instantiating PartialState just to ask would initialise a process group as a side effect.
    if state_module is None or not state_module.is_initialized():
        return None
    return state_module.PartialState()


def _int_variable(variable: str) -> int | None:
    value = os.environ.get(variable)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError as error:
        raise ConfigError(
            f"The environment variable {variable}={value!r} is not a whole number; it is set per process by "
            "accelerate launch / torchrun. Unset it for a single process, or launch with one of them."
        ) from error
    if number < 0:
        raise ConfigError(f"The environment variable {variable}={value!r} is negative; ranks and world sizes are >= 0.")
    return number
