"""The new-job form: the common keys of a training job, filled from an example and written back into it.

A job made with the form is the chosen example (config/examples/train_*.yaml) with the form's
values set at their key paths, so every other key keeps the example's value. A value the schema
would refuse is written as typed (text stays text) for run.py's checks to report next to its field.
The training resolution and frame count also set the sample size and frames, so samples look like
what was trained. Each field's help is the schema's own description of its key.
"""

from __future__ import annotations

import copy
import re
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel

from toolkit.extensions import get_process_config_class

from .folders import Folders

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "examples"
REPO_ROOT = EXAMPLES.parent.parent
KNOWN_MODELS = ("tiny-ltx2", "tiny-ltx2.3", "tiny-ltx2.5", "Lightricks/LTX-2")
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class FormField:
    name: str  # the form input's name
    key: str  # the key path in the job ("config.process[0].train.steps")
    label: str
    kind: str  # text, int, float, ints, lines, bool, choice
    also: tuple[str, ...] = ()  # key paths that take the same value (sample size follows the training size)


P = "config.process[0]"
FIELDS = (
    FormField("name", "config.name", "Run name", "text"),
    FormField("training_folder", f"{P}.training_folder", "Training folder", "choice"),
    FormField("device", f"{P}.device", "Device", "choice"),
    FormField("name_or_path", f"{P}.model.name_or_path", "Model (the LTX-2 version follows from it)", "text"),
    FormField("dataset", f"{P}.datasets[0].folder_path", "Dataset folder", "text"),
    FormField("steps", f"{P}.train.steps", "Steps", "int"),
    FormField("lr", f"{P}.train.lr", "Learning rate", "float"),
    FormField("rank", f"{P}.network.linear", "LoRA rank", "int"),
    FormField("alpha", f"{P}.network.linear_alpha", "LoRA alpha", "int"),
    FormField("resolution", f"{P}.datasets[0].resolution", "Resolution (comma-separated buckets)", "ints", (f"{P}.sample.width", f"{P}.sample.height")),
    FormField("num_frames", f"{P}.datasets[0].num_frames", "Frames per clip", "int", (f"{P}.sample.num_frames",)),
    FormField("prompts", f"{P}.sample.prompts", "Sample prompts (one per line)", "lines"),
    FormField("sample_every", f"{P}.sample.sample_every", "Sample every N steps", "int"),
    FormField("save_every", f"{P}.save.save_every", "Save every N steps", "int"),
    FormField("log_every", f"{P}.logging.log_every", "Log metrics every N steps", "int"),
    FormField("verbose", f"{P}.model.verbose", "Verbose trace (timeline and memory per phase on the run page)", "bool"),
)


def examples() -> list[str]:
    """The training examples a job can start from (file names in config/examples)."""
    names = []
    for path in sorted(EXAMPLES.glob("train_*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if _get(raw, "config.process[0].type") == "sd_trainer":
            names.append(path.name)
    return names


def load_example(name: str) -> dict:
    if name not in examples():
        raise KeyError(f"no training example named {name!r} in {EXAMPLES}")
    return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))


def form_values(raw: dict, folders: Folders) -> dict[str, str]:
    """The form's text for each field, read from a job mapping (an example's, or one posted back)."""
    values = {}
    for form_field in FIELDS:
        value = _get(raw, form_field.key)
        if form_field.kind == "ints" and isinstance(value, list):
            values[form_field.name] = ", ".join(str(item) for item in value)
        elif form_field.kind == "lines" and isinstance(value, list):
            values[form_field.name] = "\n".join(item if isinstance(item, str) else str(item.get("prompt", "")) for item in value)
        elif form_field.kind == "bool":
            values[form_field.name] = "on" if value else ""
        else:
            values[form_field.name] = "" if value is None else str(value)
    values["training_folder"] = str(folders.absolute(values["training_folder"] or "output"))
    dataset = values["dataset"]
    if dataset and not folders.absolute(dataset).exists() and (REPO_ROOT / dataset).exists():
        values["dataset"] = str(REPO_ROOT / dataset)  # an example's folder, relative to the repository
    return values


def job_from_form(example: dict, form: dict[str, str]) -> str:
    """The example with the form's values at their key paths, as YAML text."""
    raw = copy.deepcopy(example)
    for form_field in FIELDS:
        value = _typed(form_field.kind, form.get(form_field.name, ""))
        for key in (form_field.key, *form_field.also):
            if key.endswith((".width", ".height")) and isinstance(value, list):
                _set(raw, key, value[0] if value else value)
            else:
                _set(raw, key, value)
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def _typed(kind: str, text: str):
    text = text.strip() if kind != "lines" else text
    if kind == "bool":
        return text in ("on", "true", "1")
    if kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if kind == "ints":
        parts = [part.strip() for part in text.split(",") if part.strip()]
        return [int(part) if re.fullmatch(r"-?\d+", part) else part for part in parts]
    if kind == "int" and re.fullmatch(r"-?\d+", text):
        return int(text)
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            return text
    return text


def field_help(key: str) -> str:
    """The schema's description of `key` (under the sd_trainer process), or "" when it has none."""
    model: type[BaseModel] | None = None
    parts = _parts(key)
    if parts[:2] != ["config", "process"]:
        return ""
    model = get_process_config_class("sd_trainer")
    description = ""
    for part in parts[3:]:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        if info is None:
            return ""
        description = info.description or ""
        model = _model_in(info.annotation)
    return description


def _model_in(annotation) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `DatasetConfig`, `list[DatasetConfig]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _parts(key: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", key)]


def _get(raw, key: str):
    for part in _parts(key):
        if isinstance(part, int):
            if not isinstance(raw, list) or part >= len(raw):
                return None
        elif not isinstance(raw, dict):
            return None
        raw = raw[part] if isinstance(part, int) else raw.get(part)
    return raw


def _set(raw: dict, key: str, value) -> None:
    parts = _parts(key)
    for part, following in zip(parts, parts[1:]):
        if isinstance(part, int):
            while len(raw) <= part:
                raw.append({})
            raw = raw[part]
        else:
            if not isinstance(raw.get(part), (dict, list)):
                raw[part] = [] if isinstance(following, int) else {}
            raw = raw[part]
    raw[parts[-1]] = value
