"""Packages kept out of every start until the feature that uses them is built.

bitsandbytes (for `train.optimizer: adamw8bit`) is installed with requirements.txt, and peft
imports it as soon as it is installed (`peft.helpers`; diffusers imports peft when a model class
is first used). Importing bitsandbytes 0.50.2 pulls in torch._inductor: 1.2 to 1.7 CPU-seconds
on every start (runs, dry runs and tests that never build the optimizer), measured on a 2-core
machine. `defer()` (run.py's first act) hides it from such eager imports with a `None` entry in
`sys.modules`, which Python reads as "cannot be imported", so peft takes the path it takes without
bitsandbytes (which we never leave: our quantization is optimum-quanto's); `import_deferred` drops
the entry and imports it when the optimizer is built.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from types import ModuleType

DEFERRED = ("bitsandbytes",)
_hidden: set[str] = set()


def defer() -> None:
    """Hide every DEFERRED package that is not imported yet until `import_deferred` asks for it."""
    for name in DEFERRED:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            _hidden.add(name)


def is_installed(name: str) -> bool:
    """Whether `name` can be imported from sys.path, looked up without importing it (and past `defer`)."""
    return importlib.machinery.PathFinder.find_spec(name) is not None


def import_deferred(name: str) -> ModuleType:
    """Import `name`, lifting `defer`'s hiding first when it is one of ours."""
    if name in _hidden and name in sys.modules and sys.modules[name] is None:
        del sys.modules[name]
        _hidden.discard(name)
    return importlib.import_module(name)
