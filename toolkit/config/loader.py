"""Read job files (YAML or JSON), apply `--set` overrides and [name], validate into a JobConfig."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from toolkit.config.aitoolkit import read_aitoolkit_keys
from toolkit.config.job import JobConfig
from toolkit.config.model import ModelConfig
from toolkit.config.overrides import apply_override, parse_override
from toolkit.config.problems import Loc, describe_problems, format_key_path
from toolkit.errors import ConfigError

NAME_PLACEHOLDER = "[name]"

PathLike = str | os.PathLike[str]


def load_config(
    path_or_paths: PathLike | Sequence[PathLike],
    overrides: Sequence[str] = (),
    force_verbose: bool = False,
) -> JobConfig:
    """Read, merge, override and validate job files into one JobConfig.

    Several files are merged in order, later ones winning: mappings merge key
    by key, a list of mappings (such as `config.process`) merges item by
    item, any other value is replaced. Every problem is reported at once in
    a ConfigError that names the file(s) and each key path.
    """
    paths = [Path(path_or_paths)] if isinstance(path_or_paths, (str, os.PathLike)) else [Path(p) for p in path_or_paths]
    if not paths:
        raise ConfigError("no config file given; pass the path of a .yaml or .json job file")
    raw: dict[str, Any] = {}
    duplicates: list[str] = []
    for path in paths:
        data, repeated = _read_config_file(path)
        raw = merge_configs(raw, data)
        duplicates += [f"{problem} (in {path})" if len(paths) > 1 else problem for problem in repeated]
    source = " + ".join(str(path) for path in paths)
    try:
        job = parse_config(raw, source=source, overrides=overrides, force_verbose=force_verbose)
    except ConfigError as error:
        if not duplicates:
            raise
        raise ConfigError(duplicates + error.problems, source=source) from error
    if duplicates:
        raise ConfigError(duplicates, source=source)
    return job


def parse_config(
    raw: dict[str, Any],
    source: str | None = None,
    overrides: Sequence[str] = (),
    force_verbose: bool = False,
) -> JobConfig:
    """Validate an already-read config mapping (`raw` is not modified).

    ai-toolkit's spellings are read as ours first (see toolkit/config/aitoolkit.py); what that
    changed is in the returned job's `notes`, and values it cannot honour are reported together
    with the schema's problems.
    """
    raw = copy.deepcopy(raw)
    notes: dict[Loc, str] = {}
    for text in overrides:
        try:
            override = parse_override(text)
            apply_override(raw, override)
        except ConfigError as error:
            raise ConfigError(error.problems, source=source) from error
        notes[override.path] = f"from --set {text}"
    raw = substitute_name(raw)
    read_notes, problems = read_aitoolkit_keys(raw)
    try:
        job = JobConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_problems(error, JobConfig, raw, notes) + problems, source=source) from error
    if problems:
        raise ConfigError(problems, source=source)
    job._notes = read_notes
    if force_verbose:
        for process in job.config.process:
            model = getattr(process, "model", None)
            if isinstance(model, ModelConfig):
                model.verbose = True
    return job


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a .yaml/.yml/.json file; ConfigError naming the file (and line) otherwise.

    A key given twice in one mapping is an error too (YAML and JSON parsers keep the later value
    without a word).
    """
    data, duplicates = _read_config_file(path)
    if duplicates:
        raise ConfigError(duplicates, source=str(path))
    return data


def _read_config_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The file's mapping and one problem line per key given twice in it."""
    if not path.exists():
        raise ConfigError(f"config file {path} not found (working directory: {Path.cwd()})")
    if path.is_dir():
        raise ConfigError(f"config path {path} is a folder; pass a .yaml or .json file inside it")
    suffix = path.suffix.lower()
    if suffix not in {".yaml", ".yml", ".json"}:
        raise ConfigError(f"config file {path} has extension {suffix!r}; use .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from error
    data, duplicates = _parse_json(path, text) if suffix == ".json" else _parse_yaml(path, text)
    if not isinstance(data, dict):
        found = "nothing (the file is empty)" if data is None else type(data).__name__
        raise ConfigError(f"config file {path} must hold a mapping with keys job, config, meta; found {found}")
    return data, duplicates


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also lists every key given twice in one mapping, with both line numbers.

    PyYAML keeps the later value of a repeated key silently; a config where `lr` is set twice
    trains with whichever came last. The document is checked after it is composed and before it
    is constructed, so the key paths are the ones a user sees in the file.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[str] = []

    def construct_document(self, node: yaml.Node) -> Any:
        self._find_duplicate_keys(node, (), set())
        return super().construct_document(node)

    def _find_duplicate_keys(self, node: yaml.Node, path: Loc, visited: set[int]) -> None:
        if id(node) in visited:  # an alias seen before (anchors may even refer to themselves)
            return
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._find_duplicate_keys(item, (*path, index), visited)
        if not isinstance(node, yaml.MappingNode):
            return
        first_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue
            line = key_node.start_mark.line + 1
            key_path = (*path, key if isinstance(key, (str, int)) else str(key))
            if key in first_lines:
                self.duplicate_keys.append(
                    f"{format_key_path(key_path)}: key given twice (line {first_lines[key]} and line {line}); "
                    "only the later value would be used, so delete the one you do not mean"
                )
            else:
                first_lines[key] = line
            self._find_duplicate_keys(value_node, key_path, visited)


def _parse_yaml(path: Path, text: str) -> tuple[Any, list[str]]:
    loader = UniqueKeyLoader(text)
    try:
        return loader.get_single_data(), loader.duplicate_keys
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise ConfigError(f"config file {path} is not valid YAML{where}: {detail}") from error
    finally:
        loader.dispose()


class _JsonObject(dict):
    """A JSON object as read, with the keys it gave more than once."""

    duplicates: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    mapping = _JsonObject(pairs)
    seen: set[str] = set()
    mapping.duplicates = [key for key, _ in pairs if key in seen or seen.add(key)]
    return mapping


def _parse_json(path: Path, text: str) -> tuple[Any, list[str]]:
    try:
        data = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"config file {path} is not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    duplicates: list[str] = []
    return _plain_json(data, (), duplicates), duplicates


def _plain_json(value: Any, path: Loc, duplicates: list[str]) -> Any:
    """`value` with plain dicts for its objects; each key an object repeats is added to `duplicates`."""
    if isinstance(value, list):
        return [_plain_json(item, (*path, index), duplicates) for index, item in enumerate(value)]
    if not isinstance(value, _JsonObject):
        return value
    for key in dict.fromkeys(value.duplicates):
        duplicates.append(
            f"{format_key_path((*path, key))}: key given more than once in the same JSON object; "
            "only the last value would be used, so delete the ones you do not mean"
        )
    return {key: _plain_json(item, (*path, key), duplicates) for key, item in value.items()}


def merge_configs(base: Any, update: Any) -> Any:
    """`update` laid over `base`: mappings by key, lists of mappings by item, anything else replaced."""
    if isinstance(base, dict) and isinstance(update, dict):
        merged = dict(base)
        for key, value in update.items():
            merged[key] = merge_configs(base[key], value) if key in base else value
        return merged
    if _is_list_of_dicts(base) and _is_list_of_dicts(update):
        merged_items = [merge_configs(old, new) for old, new in zip(base, update)]
        return merged_items + base[len(update) :] + update[len(base) :]
    return update


def _is_list_of_dicts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def substitute_name(raw: Any) -> Any:
    """Replace [name] in every string value with `config.name` (ai-toolkit behaviour)."""
    section = raw.get("config") if isinstance(raw, dict) else None
    name = section.get("name") if isinstance(section, dict) else None
    if not isinstance(name, (str, int, float)) or isinstance(name, bool):
        return raw
    return _replace_in_strings(raw, str(name))


def _replace_in_strings(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return value.replace(NAME_PLACEHOLDER, name)
    if isinstance(value, dict):
        return {key: _replace_in_strings(item, name) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_in_strings(item, name) for item in value]
    return value
