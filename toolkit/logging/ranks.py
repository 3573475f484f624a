"""Which process of a distributed run may write logs."""

from __future__ import annotations

import os
import sys

from toolkit.logging.errors import LoggingError


def detect_main_process() -> bool:
    """True for the process that owns console and file output.

    accelerate's ``PartialState`` answers when the run has initialised it;
    otherwise the ``RANK`` variable set by torchrun / accelerate launch does
    (absent means a single process, which is the main one). accelerate is only
    consulted when already imported: a process that never imported it cannot
    have initialised its state, and importing it here would pull in torch.
    """
    state_module = sys.modules.get("accelerate.state")
    # `_shared_state` is empty until PartialState() runs; instantiating
    # PartialState to ask would initialise a process group as a side effect.
    if state_module is not None and state_module.PartialState._shared_state:
        return bool(state_module.PartialState().is_main_process)
    rank = os.environ.get("RANK")
    if rank is None or rank == "":
        return True
    try:
        return int(rank) == 0
    except ValueError as error:
        raise LoggingError(
            f"The RANK environment variable is {rank!r}, not an integer; "
            "unset it for a single process or let torchrun / accelerate launch set it."
        ) from error
