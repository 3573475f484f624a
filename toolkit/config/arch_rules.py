"""Which arch's shape rules the config values being validated follow.

A process's frame counts and sizes are checked against the rules of its own `model.arch`
(toolkit/models/arch_rules.py, read from the extension registry: no model code is imported),
and its sample and dataset defaults come from them. `ModelProcessConfig` sets them while its
values are validated; a block validated on its own (a `DatasetConfig(...)` in a script) follows
the default arch's. A context variable, not an argument, because pydantic's default factories
take none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from toolkit.extensions import arch_rules, default_arch, registered_archs
from toolkit.models.arch_rules import ArchRules

_VALIDATING: ContextVar[ArchRules | None] = ContextVar("validating_arch_rules", default=None)


def rules_in_use() -> ArchRules:
    """The rules of the process being validated; the default arch's outside one."""
    return _VALIDATING.get() or arch_rules(default_arch())


def rules_for(arch: Any) -> ArchRules:
    """The rules of `arch` when it is a registered arch; the default arch's otherwise (None, or a name the
    schema reports as unknown)."""
    return arch_rules(arch if isinstance(arch, str) and arch in registered_archs() else default_arch())


def arch_of(process: Any) -> Any:
    """The `model.arch` a raw process mapping names (None when it names none)."""
    model = process.get("model") if isinstance(process, dict) else None
    return model.get("arch") if isinstance(model, dict) else getattr(model, "arch", None)


@contextmanager
def validating_for(arch: Any) -> Iterator[ArchRules]:
    """Validate the values inside the block by `arch`'s rules (see `rules_for`)."""
    token = _VALIDATING.set(rules_for(arch))
    try:
        yield _VALIDATING.get()
    finally:
        _VALIDATING.reset(token)
