"""Turn pydantic's validation errors into one line per problem, named by YAML key path.

`config.process[0].model.qtpye: unknown key (did you mean 'qtype'?; allowed: ...)`
reads better than pydantic's default report, and the path is the one a user
finds in their file.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from toolkit.config.process import ProcessConfig

Loc = tuple[int | str, ...]

_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_NOT_A = {
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
}
_OWN_MESSAGE = {"unknown_process_type", "missing_process_type"}


def format_key_path(loc: Sequence[int | str]) -> str:
    """('config', 'process', 0, 'model') -> 'config.process[0].model'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def describe_problems(
    error: ValidationError, root: type[BaseModel], raw: Any, notes: dict[Loc, str] | None = None
) -> list[str]:
    """One line per error in `error`, which came from validating `raw` against `root`.

    `notes` maps a key path to a remark appended to every problem at or
    under it (used to say a value came from `--set`).
    """
    lines = []
    for detail in error.errors(include_url=False):
        loc = tuple(detail["loc"])
        line = f"{format_key_path(loc)}: {_describe(detail, root, raw)}"
        for noted_loc, note in (notes or {}).items():
            if loc[: len(noted_loc)] == noted_loc:
                line += f" [{note}]"
        lines.append(line)
    return lines


def _describe(detail: ErrorDetails, root: type[BaseModel], raw: Any) -> str:
    kind = detail["type"]
    value = detail.get("input")
    ctx = detail.get("ctx") or {}
    loc = tuple(detail["loc"])
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _model_at(root, loc[:-1], raw), _block_elsewhere(root, loc, raw))
    if kind == "missing":
        return _missing_key(str(loc[-1]) if loc else "", _model_at(root, loc[:-1], raw))
    if kind == "literal_error":
        return f"{_show(value)} is not allowed (allowed: {ctx['expected']})"
    if kind in _NOT_A:
        return f"{_show(value)} is not {_NOT_A[kind]}"
    if kind in _BOUNDS:
        key, symbol = _BOUNDS[kind]
        return f"{_show(value)} is out of range (must be {symbol} {ctx[key]})"
    if kind == "too_short":
        return f"has {ctx.get('actual_length')} item(s), needs at least {ctx['min_length']}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx["error"])
    if kind in _OWN_MESSAGE:
        return detail["msg"]
    return f"{_show(value)}: {detail['msg']}"


def _unknown_key(key: str, model: type[BaseModel] | None, elsewhere: str | None = None) -> str:
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    if elsewhere is not None:
        return f"unknown key here (belongs under {elsewhere}; allowed here: {', '.join(allowed)})"
    guess = next((name for name in _close_names(key, allowed) if _is_misspelling(key, name)), None)
    hint = f"did you mean {guess!r}?; " if guess else ""
    return f"unknown key ({hint}allowed: {', '.join(allowed)})"


def _close_names(key: str, allowed: list[str]) -> list[str]:
    return difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)


def _is_misspelling(key: str, name: str) -> bool:
    """Whether `key` reads as a misspelling of `name`, not as another setting with a similar name.

    `qtpye`/`qtype`, `force_first_sampl`/`force_first_sample` and `folder`/`folder_path` are; words
    swapped for other words are not (`force_first_sample`/`skip_first_sample`,
    `num_repeats`/`num_frames`, `conv_alpha`/`linear_alpha`).
    """
    key_words, name_words = key.lower().split("_"), name.lower().split("_")
    if len(key_words) == len(name_words):
        differing = [(ours, theirs) for ours, theirs in zip(key_words, name_words) if ours != theirs]
        return len(differing) <= 1 and all(_similar(ours, theirs, 0.7) for ours, theirs in differing)
    shorter, longer = sorted((key_words, name_words), key=len)
    contained = any(longer[start : start + len(shorter)] == shorter for start in range(len(longer)))
    return contained or _similar("".join(key_words), "".join(name_words), 0.9)


def _similar(first: str, second: str, cutoff: float) -> bool:
    return difflib.SequenceMatcher(None, first, second).ratio() >= cutoff


def _block_elsewhere(root: type[BaseModel], loc: Loc, raw: Any) -> str | None:
    """The other block of the same process whose key this is (e.g. train.caption_ext -> datasets[i])."""
    key = str(loc[-1])
    for depth in range(len(loc) - 1, -1, -1):
        process = _model_at(root, loc[:depth], raw)
        if process is None or not issubclass(process, ProcessConfig):
            continue
        process_path = format_key_path(loc[:depth])
        if len(loc) - depth > 1 and key in process.model_fields:
            return process_path
        for name, field in process.model_fields.items():
            if loc[depth : depth + 1] == (name,):
                continue
            block = _as_model(field.annotation, None) or _as_model(_list_item_type(field.annotation), None)
            if block is not None and key in block.model_fields:
                is_list = _list_item_type(field.annotation) is not None
                return f"{process_path}.{name}{'[]' if is_list else ''}"
        return None
    return None


def _missing_key(key: str, model: type[BaseModel] | None) -> str:
    field = model.model_fields.get(key) if model is not None else None
    if field is None or not field.description:
        return "required key missing"
    return f"required key missing ({field.description})"


def _model_at(root: type[BaseModel], loc: Loc, raw: Any) -> type[BaseModel] | None:
    """The config class that validates the mapping found at `loc` in `raw`, walking the annotations."""
    annotation: Any = root
    value = raw
    for part in loc:
        if isinstance(part, int):
            annotation = _list_item_type(annotation)
            value = value[part] if isinstance(value, list) and 0 <= part < len(value) else None
        else:
            model = _as_model(annotation, value)
            if model is None or part not in model.model_fields:
                return None
            annotation = model.model_fields[part].annotation
            value = value.get(part) if isinstance(value, dict) else None
        if annotation is None:
            return None
    return _as_model(annotation, value)


def _candidates(annotation: Any) -> Iterable[Any]:
    """The types an annotation allows, with Annotated, Optional and unions taken apart."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _candidates(get_args(annotation)[0])
    elif origin is Union or origin is types.UnionType:
        for member in get_args(annotation):
            yield from _candidates(member)
    else:
        yield annotation


def _as_model(annotation: Any, value: Any) -> type[BaseModel] | None:
    for candidate in _candidates(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if candidate is ProcessConfig and isinstance(value, dict):
                likely = ProcessConfig.likely_class_for(value)
                return ProcessConfig.registered_class_for(value) or (likely[1] if likely else candidate)
            return candidate
    return None


def _list_item_type(annotation: Any) -> Any:
    for candidate in _candidates(annotation):
        if get_origin(candidate) is list:
            return get_args(candidate)[0]
    return None


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
