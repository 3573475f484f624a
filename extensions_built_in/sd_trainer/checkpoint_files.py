"""The run folder's saves as files: their names, the list of them, and whether each one is whole.

Plain Python (no torch), so the checks before loading (resume_check.py, through config.py) can
read a run folder too. A save is `checkpoints/step_<9 digits>/` holding `state.json`,
`config.yaml`, `lora.safetensors`, `training_state.pt` (a zip archive, as torch.save writes it)
and, with an EMA, `ema.safetensors`. A save found damaged is renamed `step_<N>.damaged` (never
deleted): it stays for the user to look at, and no listing here counts it as a save any more.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from pathlib import Path

import yaml

from toolkit.safetensors_files import safetensors_problem

CHECKPOINT_DIR = "checkpoints"
EMA_CHECKPOINT_FILE = "ema.safetensors"
DAMAGED_SUFFIX = ".damaged"
_SAVE_NAME = re.compile(r"step_(\d{9})")
# What zipfile raises on damaged bytes: a bad header, a cut-off member, a name that is no longer UTF-8 (ValueError),
# flags that now ask for a feature it lacks, a member whose compressed data no longer inflates.
_DAMAGED_ARCHIVE = (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, KeyError, zlib.error)


def lora_filename(name: str, step: int | None) -> str:
    return f"{name}.safetensors" if step is None else f"{name}_{step:09d}.safetensors"


def no_ema_filename(name: str, step: int | None) -> str:
    """With an EMA, the trained weights beside `lora_filename(name, step)` (which holds the EMA):
    `<name>_no_ema.safetensors`, `<name>_<step>_no_ema.safetensors`."""
    return lora_filename(name, step).removesuffix(".safetensors") + "_no_ema.safetensors"


def best_filename(name: str, kind: str, ema_on: bool) -> str:
    """`save.keep_best`'s LoRA of `kind` ("raw" or "ema"), named as the run's other LoRA files are: with an EMA
    the EMA's best is `<name>_best.safetensors` and the trained weights' `<name>_best_no_ema.safetensors`;
    without one the trained weights' best is `<name>_best.safetensors`."""
    return f"{name}_best_no_ema.safetensors" if ema_on and kind != "ema" else f"{name}_best.safetensors"


def save_folder_name(step: int) -> str:
    return f"step_{step:09d}"


def step_saves(run_folder: Path) -> list[Path]:
    """The run's save folders, oldest first (damaged ones, renamed, and half-written `.partial` ones left out)."""
    folder = run_folder / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if _SAVE_NAME.fullmatch(path.name) and path.is_dir())


def save_problem(folder: Path) -> str | None:
    """What makes the save in `folder` unusable, naming the file, or None when every file of it is whole.

    Checked without torch: state.json and config.yaml parse and name the folder's step, each
    .safetensors file's header matches its size, and every member of training_state.pt passes
    its CRC check.
    """
    try:
        state = json.loads((folder / "state.json").read_text())
        step = int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"state.json is unreadable ({error.__class__.__name__}: {error})"
    if save_folder_name(step) != folder.name:
        return f"state.json says step {step}, but the folder is {folder.name}"
    try:
        if not isinstance(yaml.safe_load((folder / "config.yaml").read_text()), dict):
            return "config.yaml does not hold a job config"
    except (OSError, ValueError, yaml.YAMLError) as error:
        return f"config.yaml is unreadable ({error.__class__.__name__})"
    files = [folder / "lora.safetensors"]
    if (folder / EMA_CHECKPOINT_FILE).exists():
        files.append(folder / EMA_CHECKPOINT_FILE)
    for path in files:
        problem = safetensors_problem(path)
        if problem:
            return problem
    return _archive_problem(folder / "training_state.pt")


def _archive_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except FileNotFoundError:
        return f"{path.name} is missing"
    except _DAMAGED_ARCHIVE as error:
        return f"{path.name} is not a whole torch.save archive ({error.__class__.__name__}: {error})"
    return f"{path.name}: its member {bad} fails its CRC check" if bad else None


def saved_config(folder: Path) -> dict:
    """The job config a save was written with (its config.yaml, as a mapping)."""
    return yaml.safe_load((folder / "config.yaml").read_text())


def saved_state(folder: Path) -> dict:
    """A save's state.json: step, LoRA alpha, the run's name and the base model's version."""
    return json.loads((folder / "state.json").read_text())


def mark_damaged(folder: Path) -> Path:
    """Rename a damaged save out of the list of saves (`step_<N>.damaged`, `.damaged.2`, ...); returns the new path."""
    target = folder.with_name(folder.name + DAMAGED_SUFFIX)
    number = 1
    while target.exists():
        number += 1
        target = folder.with_name(f"{folder.name}{DAMAGED_SUFFIX}.{number}")
    folder.rename(target)
    return target
