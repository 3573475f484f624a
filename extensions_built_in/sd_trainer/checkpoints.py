"""Saves and resume: the LoRA file, and beside it everything needed to continue exactly.

A save is a folder `checkpoints/step_<N>/` holding the LoRA (diffusers
format, the trained tensors and alpha as they are; with an EMA also `ema.safetensors`), optimizer and
scheduler state, RNG states, the step and the config.
It is written under a temporary name and renamed into place, so a process
killed mid-save leaves the previous save intact and loadable; once in place it is
read back (`verify_save`) before any older save is pruned, and a resume takes the
newest save that verifies, renaming each newer damaged one `step_<N>.damaged`
(checkpoint_files.py holds the names and the torch-free checks). The user-facing
LoRA `<name>_<N>.safetensors` sits in the run folder, written the same way,
in `save.format` with the strength folded into the weights so that every
loader applies it (toolkit/network/formats.py); with an EMA it holds the EMA
weights and `<name>_<N>_no_ema.safetensors` the trained ones.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from toolkit.atomic_write import flush_to_disk
from toolkit.errors import CheckpointError
from toolkit.finite import describe_names, nonfinite_tensor_names
from toolkit.network.formats import load_lora_state
from toolkit.safetensors_files import safetensors_problem
from toolkit.trace import get_tracer

from .checkpoint_files import (
    CHECKPOINT_DIR,
    EMA_CHECKPOINT_FILE,
    lora_filename,
    mark_damaged,
    no_ema_filename,
    save_folder_name,
    save_problem,
    step_saves,
)

SAVE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass
class TrainingState:
    step: int
    lora_state: dict[str, torch.Tensor]
    optimizer_state: dict
    scheduler_state: dict
    rng_state: dict
    extra: dict
    lora_alpha: float  # the LoRA's strength is alpha / rank; its files must carry it
    ema_state: dict[str, torch.Tensor] | None = None  # EMA of the LoRA weights (train.ema_config), same keys
    scaler_state: dict | None = None  # the fp16 GradScaler's scale and growth tracker (train.dtype: fp16 on CUDA)
    model_metadata: dict = field(default_factory=dict)  # what the base model is (LTX-2 version): LoRA header + state.json
    lora_rank: int | None = None  # the adapter's rank; None: read from the LoRA A shapes (a LoKr needs it given)
    file_metadata: dict = field(default_factory=dict)  # what LoRA browsers read (lora_metadata.py): user files only


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _user_files(name: str, step: int | None, state: TrainingState) -> list[tuple[str, dict, dict]]:
    """(file name, weights, extra header) of each LoRA file for users at one save.

    With an EMA the LoRA file holds the EMA weights, as ai-toolkit saves them (they are what the
    samples show); the trained weights go beside it under `no_ema_filename`.
    """
    if state.ema_state is None:
        return [(lora_filename(name, step), state.lora_state, {})]
    return [
        (lora_filename(name, step), state.ema_state, {"ema": True}),
        (no_ema_filename(name, step), state.lora_state, {"ema": False}),
    ]


def save_user_lora(
    model, path: Path, weights: dict, save_config, name: str, step: int, alpha: float, rank: int | None, metadata: dict
) -> Path:
    """One LoRA file for users: `save.format` and `save.dtype`, the strength folded, written atomically by the
    model's save point; its header names the run, the step and the format before `metadata`."""
    header = {"step": step, "format": save_config.format, "name": name, **metadata}
    return model.save_model(path, weights, save_config.format, SAVE_DTYPES[save_config.dtype], header, alpha, rank=rank)


def _save_user_files(model, run_folder: Path, name: str, step: int | None, state: TrainingState, save_config) -> list[Path]:
    """Every LoRA file for users at one save (`step` None: the final ones)."""
    metadata = {**state.model_metadata, **state.file_metadata}
    return [
        save_user_lora(
            model, run_folder / filename, weights, save_config, name, state.step, state.lora_alpha, state.lora_rank,
            {**metadata, **extra},
        )
        for filename, weights, extra in _user_files(name, step, state)
    ]


def save_training_state(
    model, run_folder: Path, name: str, state: TrainingState, save_config, config_text: str, keep: int
) -> dict:
    """Write one save (LoRA file + resume folder) atomically, verify it on disk, then prune old ones.

    Every LoRA file is written by `model.save_model` (the model's save point, traced there); this
    module adds the resume state around it. A state holding NaN or inf (LoRA, EMA or optimizer) is
    refused before any file is written. No older save is deleted before the new one reads back whole
    (`verify_save`); one that does not is kept as `step_<N>.damaged` and the run stops.
    """
    refuse_nonfinite(state, run_folder)
    started = time.perf_counter()
    with get_tracer().span("save_checkpoint", step=state.step, format=save_config.format, dtype=save_config.dtype) as span:
        user_files = _save_user_files(model, run_folder, name, state.step, state, save_config)
        metadata = {"step": state.step, "format": "diffusers", "name": name, **state.model_metadata}  # resume copies
        final = _write_save_folder(model, run_folder / CHECKPOINT_DIR, state, metadata, config_text)
        _verified(final, user_files, run_folder, state.step)
        removed = prune(run_folder, name, keep)
        files = [*user_files, *sorted(final.iterdir())]
        span.set(
            files=[str(p) for p in files],
            bytes=sum(p.stat().st_size for p in files),
            removed=removed,
            seconds=time.perf_counter() - started,
        )
    return {"lora": user_files[0], "checkpoint": final, **({"no_ema": user_files[1]} if len(user_files) > 1 else {})}


def _write_save_folder(model, checkpoints: Path, state: TrainingState, metadata: dict, config_text: str) -> Path:
    """The resume folder, written as `.step_<N>.partial` and renamed into place once every file is on disk."""
    final = checkpoints / save_folder_name(state.step)
    staging = checkpoints / f".{final.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    model.save_model(
        staging / "lora.safetensors", state.lora_state, "diffusers", torch.float32, metadata, state.lora_alpha,
        fold_strength=False, rank=state.lora_rank,
    )
    if state.ema_state is not None:
        model.save_model(
            staging / EMA_CHECKPOINT_FILE, state.ema_state, "diffusers", torch.float32, metadata, state.lora_alpha,
            fold_strength=False, rank=state.lora_rank,
        )
    bundle = {"optimizer": state.optimizer_state, "scheduler": state.scheduler_state, "rng": state.rng_state,
              "scaler": state.scaler_state}
    _write(staging / "training_state.pt", lambda handle: torch.save(bundle, handle))
    info = {"step": state.step, "lora_alpha": state.lora_alpha, **state.extra, **state.model_metadata}
    info.update(step=state.step, lora_alpha=state.lora_alpha)  # `extra` read back from an older save names its step
    _write(staging / "state.json", lambda handle: handle.write(json.dumps(info, indent=2).encode()))
    _write(staging / "config.yaml", lambda handle: handle.write(config_text.encode()))
    _fsync_folder(staging)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def _write(path: Path, write) -> None:
    """`write(handle)` into `path` through Python's file I/O, so a full disk is an OSError naming `path`
    (torch.save given a path reports it as a RuntimeError without an errno)."""
    try:
        with open(path, "wb") as handle:
            write(handle)
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise


def _verified(final: Path, lora_files: list[Path], run_folder: Path, step: int) -> None:
    """CheckpointError (and the save renamed `.damaged`) when the save just written does not read back whole."""
    problem = verify_save(final) or next(filter(None, map(safetensors_problem, lora_files)), None)
    if problem is None:
        return
    kept = mark_damaged(final)
    previous = latest_checkpoint(run_folder)
    raise CheckpointError(
        f"the save of step {step} did not read back whole "
        f"({problem}); it is kept as {kept} and no older save was deleted. The last good save is "
        f"{previous or 'none'}; check the disk, then run the same config again to resume from it."
    )


def save_final_loras(model, run_folder: Path, name: str, state: TrainingState, save_config) -> dict[str, Path]:
    """The run's final `<name>.safetensors` (the EMA with one; then the trained weights in `<name>_no_ema.safetensors`)."""
    written = _save_user_files(model, run_folder, name, None, state, save_config)
    return {"final": written[0], **({"final_no_ema": written[1]} if len(written) > 1 else {})}


def refuse_nonfinite(state: TrainingState, run_folder: Path) -> None:
    """CheckpointError when any tensor of the save would be NaN or inf: such a save could only be resumed into NaN."""
    parts = {"lora": state.lora_state, "ema": state.ema_state or {}, "optimizer": state.optimizer_state}
    bad = nonfinite_tensor_names(parts)
    if bad:
        last_good = latest_checkpoint(run_folder)
        raise CheckpointError(
            f"not saving step {state.step} in {run_folder}: {len(bad)} tensors hold NaN or inf "
            f"({describe_names(bad)}). The last good checkpoint is {last_good or 'none (nothing was saved yet)'}; "
            "lower train.lr and resume from it."
        )


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        flush_to_disk(path)


def prune(run_folder: Path, name: str, keep: int) -> list[str]:
    """Keep the newest `keep` step saves (LoRA files and resume folders); saves renamed `.damaged` stay."""
    removed = []
    for old in step_saves(run_folder)[:-keep] if keep > 0 else []:
        step = int(old.name.removeprefix("step_"))
        shutil.rmtree(old)
        lora = run_folder / lora_filename(name, step)
        lora.unlink(missing_ok=True)
        (run_folder / no_ema_filename(name, step)).unlink(missing_ok=True)
        removed.append(old.name)
    return removed


def check_same_base_model(saved: dict, current: dict, checkpoint: Path) -> None:
    """A LoRA of one LTX-2 version has the same keys and shapes on another (2.0 and 2.3): refuse to resume across.

    `saved` is the checkpoint's state.json, `current` the loaded model's metadata (e.g. {"ltx2_version": "2.3"}).
    """
    for key, value in current.items():
        if key.endswith("_version") and key in saved and str(saved[key]) != str(value):
            raise CheckpointError(
                f"{checkpoint}: saved while training on {key}={saved[key]}, but model.name_or_path is "
                f"{key}={value}; resume with the model it was trained on, or start a new run (another "
                "training_folder or config.name)"
            )


def latest_checkpoint(run_folder: Path) -> Path | None:
    saves = [p for p in step_saves(run_folder) if (p / "state.json").is_file()]
    return saves[-1] if saves else None


@dataclass
class ResumePoint:
    """The save a run resumes from (None: start from step 0) and the newer ones found damaged, newest first."""

    folder: Path | None
    damaged: list[tuple[Path, str]] = field(default_factory=list)  # (where it is now, what is wrong with it)


def choose_resume(run_folder: Path, rename: bool) -> ResumePoint:
    """The newest save that verifies (`verify_save`); each newer one is reported and, with `rename` (the main
    process), renamed `step_<N>.damaged`. When every save is damaged nothing is renamed: CheckpointError."""
    damaged: list[tuple[Path, str]] = []
    for folder in reversed(step_saves(run_folder)):
        problem = verify_save(folder)
        if problem is None:
            return ResumePoint(folder, [(mark_damaged(f) if rename else f, p) for f, p in damaged])
        damaged.append((folder, problem))
    if damaged:
        listing = "; ".join(f"{folder.name}: {problem}" for folder, problem in damaged)
        raise CheckpointError(
            f"every save in {run_folder / CHECKPOINT_DIR} is damaged ({listing}); nothing was renamed or deleted. "
            f"To start this run over, move {run_folder / CHECKPOINT_DIR} away, or give the new run another config.name."
        )
    return ResumePoint(None)


def verify_save(folder: Path) -> str | None:
    """What makes a save unusable, or None: its files whole (checkpoint_files.save_problem) and its
    training_state.pt unpickled as weights only (memory-mapped: its tensors are not read into memory)."""
    problem = save_problem(folder)
    if problem:
        return problem
    try:
        _read_bundle(folder / "training_state.pt", mmap=True)
    except _UNREADABLE as error:
        return f"training_state.pt cannot be loaded ({error.__class__.__name__}: {str(error).splitlines()[0][:200]})"
    return None


# A damaged file can fail anywhere in unpickling; each of these means "this save cannot be used".
_UNREADABLE = (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError, KeyError, TypeError, IndexError)
# numpy's RNG state in training_state.pt is a uint32 array: allowed by name, so the file loads with weights_only.
_NUMPY_STATE_TYPES = [np.zeros(1).__reduce__()[0], np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _read_bundle(path: Path, mmap: bool = False) -> dict:
    """training_state.pt, loaded with weights_only (a file cannot run code on load)."""
    with torch.serialization.safe_globals(_NUMPY_STATE_TYPES):
        bundle = torch.load(path, weights_only=True, mmap=mmap)
    missing = {"optimizer", "scheduler", "rng"} - set(bundle if isinstance(bundle, dict) else ())
    if missing:
        raise KeyError(f"{path.name} lacks {', '.join(sorted(missing))}")
    return bundle


def saved_step(folder: Path) -> int:
    """The step a save folder holds, from its state.json alone (no tensors read)."""
    try:
        return int(json.loads((folder / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"cannot read the step of {folder / 'state.json'}: {error!r}. Delete that folder to resume from the "
            "save before it."
        ) from error


def load_training_state(folder: Path) -> TrainingState:
    try:
        info = json.loads((folder / "state.json").read_text())
        bundle = _read_bundle(folder / "training_state.pt")
        return TrainingState(
            step=int(info["step"]),
            lora_state=load_lora_state(folder / "lora.safetensors"),
            optimizer_state=bundle["optimizer"],
            scheduler_state=bundle["scheduler"],
            rng_state=bundle["rng"],
            extra=info,
            lora_alpha=float(info["lora_alpha"]),
            ema_state=load_lora_state(ema_file) if (ema_file := folder / EMA_CHECKPOINT_FILE).is_file() else None,
            scaler_state=bundle.get("scaler"),
        )
    except _UNREADABLE as error:
        raise CheckpointError(
            f"cannot resume from {folder}: {error!r}. Delete that folder to resume from the save before it."
        ) from error
