"""Garbage collection paused while a process imports the training stack.

Importing torch, diffusers, transformers and peft (about 3,000 modules for the tiny example's run)
allocates objects that live as long as the process, and every few thousand allocations the collector
walked all of those made so far: about a quarter of the imports' time (4.1 s against 3.0 s for the tiny
example's on a 2-core machine). run.py's command line pauses it while it imports and checks the configs;
the UI while it checks a job, which imports the model code into the server the first time.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def collection_paused(active: bool = True):
    """No garbage collection inside the block when `active`; the collector runs again however the block ends. A
    block entered while the collector is already off (an outer pause, another thread's) leaves it to that one."""
    if not active or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
