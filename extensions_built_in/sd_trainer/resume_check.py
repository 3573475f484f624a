"""Can this config resume the run saved in its folder? Answered before anything loads, from the saved config.

Each save holds the job config it was written with (`config.yaml`). A setting that differs from
this config's is one of two kinds:

- one a resume cannot take (`CANNOT_RESUME`: the saved tensors, the optimizer state or the base
  model were made with it): a ConfigError (exit 2) listing every such change, both values, and
  the two ways out: set it back, or start a new run under another name;
- any other (more steps, other clips, the learning rate, sampling, logging...): the run resumes
  with it, and says so (`describe_changes`, printed and traced).

Plain Python (no torch): run.py's checks call it through config.py, and the trainer calls it
again for the save it actually resumes from (a newer one may prove damaged only when loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint_files import save_problem, saved_config, saved_state, step_saves

# key under the process -> why a resume cannot take a change of it
CANNOT_RESUME: dict[str, str] = {
    "network.type": "the saved tensors are of that adapter kind",
    "network.linear": "the rank is the shape of every saved LoRA matrix",
    "network.linear_alpha": "alpha / rank is the strength the saved weights were trained at",
    "network.target_modules": "the save holds tensors for exactly the layers it selected",
    "network.exclude_modules": "the save holds tensors for exactly the layers it selected",
    "network.lokr_full_rank": "it fixes the shapes of the saved LoKr factors",
    "network.lokr_factor": "it fixes the shapes of the saved LoKr factors",
    "train.optimizer": "the saved optimizer state belongs to that optimizer",
    "train.optimizer_params": "the saved optimizer state carries these settings and would replace the new ones",
    "train.weight_decay": "the saved optimizer state carries it and would replace the new value",
    "model.arch": "the LoRA was trained for that model version",
    "model.name_or_path": "the LoRA was trained on that base model",
    "model.base_model_path": "the LoRA was trained on that base model",
}
NOT_COMPARED = {"training_folder"}  # how the run was found, not a setting of it
# free-form mappings: their own keys come and go, so they are compared whole, as one setting
COMPARED_WHOLE = {"train.optimizer_params", "train.lr_scheduler_params"}
_PATH_KEYS = ("name_or_path", "base_model_path", "folder_path")
_ABSENT = object()


@dataclass(frozen=True)
class SettingChange:
    """One setting (key path under the process, e.g. `network.linear`) that differs from the saved run's."""

    key: str
    saved: Any
    now: Any

    @property
    def blocks_resume(self) -> bool:
        return self.key in CANNOT_RESUME

    def describe(self) -> str:
        return f"{self.key}: {_show(self.saved)} -> {_show(self.now)}"


@dataclass(frozen=True)
class SavedRun:
    """The save a resume would start from: its folder, step and the process config it was written with."""

    folder: Path
    step: int
    process: dict


def setting_changes(saved_process: dict, current_process: dict) -> list[SettingChange]:
    """Every setting of `current_process` (a process config's model_dump(mode="json")) that differs from the save's.

    Keys only one side has (a schema older or newer than the save) are not compared; a dataset added or
    removed is one change of `datasets[i]`.
    """
    return [change for change in _changes(saved_process, current_process, "") if change.key not in NOT_COMPARED]


def newest_whole_save(run_folder: Path, process_type: str, training_folder: str) -> SavedRun | None:
    """The newest save whose files are whole (checkpoint_files.save_problem), read without torch; None without one."""
    for folder in reversed(step_saves(run_folder)):
        if save_problem(folder) is None:
            return read_saved_run(folder, process_type, training_folder)
    return None


def read_saved_run(folder: Path, process_type: str, training_folder: str) -> SavedRun | None:
    """`folder`'s step and the config of its process of `process_type` that wrote to `training_folder`
    (else its first process of that type); None when the save names no such process."""
    processes = [p for p in (saved_config(folder).get("config") or {}).get("process") or [] if isinstance(p, dict)]
    ours = [p for p in processes if p.get("type") == process_type]
    same_folder = [p for p in ours if _resolved(p.get("training_folder")) == _resolved(training_folder)]
    process = next(iter(same_folder or ours), None)
    return SavedRun(folder, int(saved_state(folder)["step"]), process) if process is not None else None


def resume_problems(saved: SavedRun, current_process: dict, where: str) -> list[str]:
    """ConfigError lines for the changes a resume from `saved` cannot take: one per key, then the ways out."""
    blocking = [change for change in setting_changes(saved.process, current_process) if change.blocks_resume]
    if not blocking:
        return []
    lines = [
        f"{where}.{change.key}: {_show(change.saved)} in the run saved at step {saved.step}, {_show(change.now)} now; "
        f"a resume cannot take this change: {CANNOT_RESUME[change.key]}"
        for change in blocking
    ]
    run_folder = saved.folder.parent.parent
    lines.append(
        f"config.name: {run_folder} holds that run ({saved.folder.name}); set the values above back to resume it "
        "from there, or start a new run under another config.name (or training_folder)"
    )
    return lines


def describe_changes(changes: list[SettingChange]) -> str:
    """The changes a resume takes, on one line: `train.steps: 4 -> 6; train.lr: 0.001 -> 0.0005`."""
    return "; ".join(change.describe() for change in changes)


def _changes(saved: Any, now: Any, key: str):
    if key in CANNOT_RESUME or key in COMPARED_WHOLE:
        if _normalised(key, saved) != _normalised(key, now):
            yield SettingChange(key, saved, now)
    elif isinstance(saved, dict) and isinstance(now, dict):
        for name in [name for name in now if name in saved]:
            yield from _changes(saved[name], now[name], f"{key}.{name}" if key else name)
    elif _list_of_dicts(saved) and _list_of_dicts(now):
        for index in range(max(len(saved), len(now))):
            saved_item = saved[index] if index < len(saved) else _ABSENT
            now_item = now[index] if index < len(now) else _ABSENT
            yield from _changes(saved_item, now_item, f"{key}[{index}]")
    elif _normalised(key, saved) != _normalised(key, now):
        yield SettingChange(key, saved, now)


def _list_of_dicts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _normalised(key: str, value: Any) -> Any:
    return _resolved(value) if key.endswith(_PATH_KEYS) else value


def _resolved(value: Any) -> Any:
    """A path written two ways (relative, absolute, with ~) is one setting when both name the same place."""
    if isinstance(value, str) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(none)"
    if isinstance(value, dict):
        return f"dataset {value['folder_path']}" if "folder_path" in value else json.dumps(value, sort_keys=True)
    return json.dumps(value)
