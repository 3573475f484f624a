"""The classes a diffusers pipeline folder's model_index.json names, resolved the way diffusers does.

Each entry is `[library, class name]`: the library is `diffusers`,
`transformers`, or a diffusers pipeline module (e.g. `ltx2` for LTX-2's connectors
and vocoder). The loader and the memory plan both read classes from here, so
a folder is built from the classes it was saved with, never from a fixed list.
"""

from __future__ import annotations

import importlib


class UnknownComponentClass(LookupError):
    """model_index.json names a class the installed libraries do not have (or names none)."""


def index_entry(index: dict, name: str) -> tuple[str, str]:
    """(library, class name) of component `name`; UnknownComponentClass when the entry is missing or null."""
    entry = index.get(name)
    if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not entry[0] or not entry[1]:
        raise UnknownComponentClass(f"model_index.json lists no class for the {name} (entry: {entry!r})")
    return str(entry[0]), str(entry[1])


def resolve_class(library: str, class_name: str) -> type:
    """The class object for a model_index.json entry (imported lazily: these imports are heavy)."""
    module_name = library if library in ("diffusers", "transformers") else f"diffusers.pipelines.{library}"
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise UnknownComponentClass(
            f"model_index.json names class {class_name} from {library!r}, which the installed diffusers/transformers "
            f"do not have ({error})"
        ) from error


def listed_components(index: dict) -> dict[str, tuple[str, str]]:
    """Every component with a class: name -> (library, class name); null entries (optional, absent) left out."""
    listed = {}
    for name in index:
        if name.startswith("_"):
            continue
        try:
            listed[name] = index_entry(index, name)
        except UnknownComponentClass:
            continue
    return listed
