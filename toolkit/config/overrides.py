"""`--set dotted.key=value` overrides, applied to the raw config before validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from toolkit.config.problems import Loc, format_key_path
from toolkit.errors import ConfigError

_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")
_EXAMPLE = "e.g. --set config.process.0.model.verbose=true"


@dataclass(frozen=True)
class Override:
    """One `--set` entry: where in the config it points and the value, parsed as YAML."""

    text: str
    path: Loc
    value: Any


def parse_override(text: str) -> Override:
    """'config.process.0.train.lr=1e-4' -> path ('config', 'process', 0, 'train', 'lr'), value '1e-4'.

    The value is read with yaml.safe_load, so true, 3, [1, 2] and {a: 1}
    arrive typed; pydantic turns numeric strings such as 1e-4 into numbers.
    List items are addressed as `.0` or `[0]`.
    """
    key, separator, value_text = text.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"--set {text!r}: expected dotted.key=value ({_EXAMPLE})")
    path = _parse_key_path(key.strip(), text)
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: the value {value_text!r} is not valid YAML ({error})") from error
    return Override(text=text, path=path, value=value)


def _parse_key_path(key: str, text: str) -> Loc:
    path: list[int | str] = []
    for chunk in key.split("."):
        match = _PART.fullmatch(chunk)
        if match is None:
            raise ConfigError(f"--set {text!r}: cannot read the key path {key!r} ({_EXAMPLE})")
        name, indices = match.groups()
        path.append(int(name) if name.isdigit() else name)
        path.extend(int(index) for index in re.findall(r"\d+", indices))
    return tuple(path)


def apply_override(raw: dict[str, Any], override: Override) -> None:
    """Set the override's value in `raw`, creating missing mappings on the way.

    A key that is not in the schema is created anyway, so that validation
    reports it as an unknown key with the allowed ones; a list index past the
    end of a list is reported here.
    """
    container: Any = raw
    for depth, part in enumerate(override.path):
        last = depth == len(override.path) - 1
        where = format_key_path(override.path[:depth])
        if isinstance(container, list):
            if not isinstance(part, int):
                raise ConfigError(f"--set {override.text!r}: {where} is a list; address its items by number ({_EXAMPLE})")
            if not 0 <= part < len(container):
                raise ConfigError(
                    f"--set {override.text!r}: {where} has {len(container)} item(s), so index {part} does not exist"
                )
        elif isinstance(container, dict):
            part = str(part) if isinstance(part, int) else part
            if not last and container.get(part) is None:
                container[part] = {}
        else:
            raise ConfigError(
                f"--set {override.text!r}: {where} is {container!r}, not a mapping or list, so it has no {part!r}"
            )
        if last:
            container[part] = override.value
        else:
            container = container[part]
