"""Saves and resume: the LoRA file, and beside it everything needed to continue exactly.

A save is a folder `checkpoints/step_<N>/` holding the LoRA (diffusers
format, the trained tensors and alpha as they are; with an EMA also `ema.safetensors`), optimizer and
scheduler state, RNG states, the step and the config.
It is written under a temporary name and renamed into place, so a process
killed mid-save leaves the previous save intact and loadable. The user-facing
LoRA `<name>_<N>.safetensors` sits in the run folder, written the same way,
in `save.format` with the strength folded into the weights so that every
loader applies it (toolkit/network/formats.py); with an EMA it holds the EMA
weights and `<name>_<N>_no_ema.safetensors` the trained ones.
"""

from __future__ import annotations

import json
import os
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
from toolkit.trace import get_tracer

CHECKPOINT_DIR = "checkpoints"
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


def lora_filename(name: str, step: int | None) -> str:
    return f"{name}.safetensors" if step is None else f"{name}_{step:09d}.safetensors"


def no_ema_filename(name: str, step: int | None) -> str:
    """With an EMA, the trained weights beside `lora_filename(name, step)` (which holds the EMA):
    `<name>_no_ema.safetensors`, `<name>_<step>_no_ema.safetensors`."""
    return lora_filename(name, step).removesuffix(".safetensors") + "_no_ema.safetensors"


EMA_CHECKPOINT_FILE = "ema.safetensors"


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


def _save_user_files(model, run_folder: Path, name: str, step: int | None, state: TrainingState, save_config) -> list[Path]:
    """Every LoRA file for users at one save (`step` None: the final ones), in `save.format` with the strength folded."""
    metadata = {"step": state.step, "format": save_config.format, "name": name, **state.model_metadata, **state.file_metadata}
    return [
        model.save_model(
            run_folder / filename, weights, save_config.format, SAVE_DTYPES[save_config.dtype], {**metadata, **extra},
            state.lora_alpha, rank=state.lora_rank,
        )
        for filename, weights, extra in _user_files(name, step, state)
    ]


def save_training_state(
    model, run_folder: Path, name: str, state: TrainingState, save_config, config_text: str, keep: int
) -> dict:
    """Write one save (LoRA file + resume folder) atomically; prune old ones. Returns what was written.

    Every LoRA file is written by `model.save_model` (the model's save point, traced there); this
    module adds the resume state around it. A state holding NaN or inf (LoRA, EMA or optimizer) is
    refused before any file is written.
    """
    refuse_nonfinite(state, run_folder)
    started = time.perf_counter()
    with get_tracer().span("save_checkpoint", step=state.step, format=save_config.format, dtype=save_config.dtype) as span:
        user_files = _save_user_files(model, run_folder, name, state.step, state, save_config)
        metadata = {"step": state.step, "format": "diffusers", "name": name, **state.model_metadata}  # resume copies

        checkpoints = run_folder / CHECKPOINT_DIR
        final = checkpoints / f"step_{state.step:09d}"
        staging = checkpoints / f".step_{state.step:09d}.partial"
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
        torch.save(
            {
                "optimizer": state.optimizer_state,
                "scheduler": state.scheduler_state,
                "rng": state.rng_state,
                "scaler": state.scaler_state,
            },
            staging / "training_state.pt",
        )
        (staging / "state.json").write_text(json.dumps({"step": state.step, "lora_alpha": state.lora_alpha, **state.extra, **state.model_metadata}, indent=2))
        (staging / "config.yaml").write_text(config_text)
        _fsync_folder(staging)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        removed = prune(run_folder, name, keep)
        files = [*user_files, *sorted(final.iterdir())]
        span.set(
            files=[str(p) for p in files],
            bytes=sum(p.stat().st_size for p in files),
            removed=removed,
            seconds=time.perf_counter() - started,
        )
    return {"lora": user_files[0], "checkpoint": final, **({"no_ema": user_files[1]} if len(user_files) > 1 else {})}


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
    """Keep the newest `keep` step saves (LoRA files and resume folders)."""
    removed = []
    saves = sorted((run_folder / CHECKPOINT_DIR).glob("step_*"))
    for old in saves[:-keep] if keep > 0 else []:
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
    saves = sorted(p for p in (run_folder / CHECKPOINT_DIR).glob("step_*") if (p / "state.json").is_file())
    return saves[-1] if saves else None


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
        bundle = torch.load(folder / "training_state.pt", weights_only=False)
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
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise CheckpointError(
            f"cannot resume from {folder}: {error!r}. Delete that folder to resume from the save before it."
        ) from error
