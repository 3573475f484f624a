"""The configuration reference (docs/config.md), written from the pydantic fields' descriptions.

The schema is the one source of a key's type, default and meaning; this module only lays it out as
Markdown, one table per block, so the reference cannot drift from what `run.py` accepts.
`python -m toolkit.config.reference --write` regenerates the file; a test fails when it is stale.
"""

from __future__ import annotations

import argparse
import enum
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from toolkit.config.job import JobConfig
from toolkit.extensions import get_process_config_class, registered_process_types

REFERENCE_PATH = Path(__file__).resolve().parents[2] / "docs" / "config.md"

_HEADER = """# Configuration reference

Every key a job file takes, with its type, default and meaning, generated from the schema
(`toolkit/config/`, and each process type's own config class) by
`python -m toolkit.config.reference --write`; `tests/config/test_config_reference.py` fails when this
page is stale. Unknown keys and wrong types are errors that name the key, before anything loads
([configs.md](configs.md)); ai-toolkit's spellings are read as these ([aitoolkit.md](aitoolkit.md)).
"""


def _config_models(annotation: Any) -> list[type[BaseModel]]:
    """The config classes an annotation holds (a block, a list of blocks, an optional block...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in typing.get_args(annotation):
        found += [model for model in _config_models(argument) if model not in found]
    return found


def _type_text(annotation: Any) -> str:
    """A short, readable spelling of a field's type: `int`, `list[str]`, `'a' | 'b'`, a block name."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(arguments[0])
    if origin is typing.Literal:
        return " | ".join(repr(value) for value in arguments)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(argument) for argument in arguments)
    if origin in (list, tuple, dict, set):
        inner = ", ".join(_type_text(argument) for argument in arguments if argument is not Ellipsis)
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(repr(member.value) for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "block"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    else:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "(block defaults)"
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _block_table(path: str, model: type[BaseModel]) -> list[str]:
    lines = [f"## `{path}`" if path else "## Top level", ""]
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    if doc:
        lines += [_cell(doc), ""]
    lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        lines.append(
            f"| `{key}` | {_cell(_type_text(field.annotation))} | {_cell(_default_text(field))} "
            f"| {_cell(field.description or '')} |"
        )
    return lines + [""]


def _walk(path: str, model: type[BaseModel], seen: set[tuple[str, type]]) -> list[str]:
    """The block at `path` and every block inside it, depth first, each block once per path."""
    if (path, model) in seen:
        return []
    seen.add((path, model))
    lines = _block_table(path, model)
    for name, field in model.model_fields.items():
        key = field.alias or name
        for inner in _config_models(field.annotation):
            if issubclass(inner, BaseModel) and inner.__module__ != "toolkit.config.process":
                suffix = "[]" if typing.get_origin(_strip_optional(field.annotation)) is list else ""
                lines += _walk(f"{path}.{key}{suffix}".lstrip("."), inner, seen)
    return lines


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        if len(rest) == 1:
            return _strip_optional(rest[0])
    return annotation


def config_reference() -> str:
    """docs/config.md as it should read for the schema and the process types registered now."""
    lines = [_HEADER]
    lines += _walk("", JobConfig, set())
    for type_name in sorted(registered_process_types()):
        lines += [f"# Process `type: {type_name}`", ""]
        lines += _walk("config.process[]", get_process_config_class(type_name), set())
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {REFERENCE_PATH} instead of printing it")
    args = parser.parse_args(argv)
    text = config_reference()
    if args.write:
        REFERENCE_PATH.write_text(text)
        print(f"wrote {REFERENCE_PATH}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
