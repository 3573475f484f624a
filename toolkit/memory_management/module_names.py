"""Matching module names against the fnmatch patterns of exclude / ignore lists."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatch


def matching_pattern(name: str, patterns: Sequence[str]) -> str | None:
    """The first pattern matching the module name or one of its parents' names, else None.

    A parent's name covers its children, so ``"time_embed"`` excludes ``"time_embed.linear"``.
    """
    prefixes = [name]
    while "." in prefixes[-1]:
        prefixes.append(prefixes[-1].rsplit(".", 1)[0])
    for pattern in patterns:
        if any(fnmatch(prefix, pattern) for prefix in prefixes):
            return pattern
    return None
