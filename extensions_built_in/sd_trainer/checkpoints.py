"""Saves and resume: the LoRA file, and beside it everything needed to continue exactly.

A save is a folder `checkpoints/step_<N>/` holding the LoRA (diffusers
format, the trained tensors and alpha as they are), optimizer and scheduler state, RNG states, the step and the config.
It is written under a temporary name and renamed into place, so a process
killed mid-save leaves the previous save intact and loadable. The user-facing
LoRA `<name>_<N>.safetensors` sits in the run folder, written the same way,
in `save.format` with the strength folded into the weights so that every
loader applies it (toolkit/network/formats.py).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from toolkit.errors import CheckpointError
from toolkit.network.formats import load_lora_state, save_lora
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
    lora_rank: int | None = None  # the adapter's rank; None: read from the LoRA A shapes (a LoKr needs it given)


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


def ema_filename(name: str, step: int | None) -> str:
    """The EMA LoRA beside `lora_filename(name, step)`: `<name>_ema.safetensors`, `<name>_<step>_ema.safetensors`."""
    return lora_filename(name, step).removesuffix(".safetensors") + "_ema.safetensors"


EMA_CHECKPOINT_FILE = "ema.safetensors"


def save_training_state(
    run_folder: Path, name: str, state: TrainingState, save_config, config_text: str, keep: int
) -> dict:
    """Write one save (LoRA file + resume folder) atomically; prune old ones. Returns what was written."""
    started = time.perf_counter()
    with get_tracer().span("save_model", step=state.step, format=save_config.format, dtype=save_config.dtype) as span:
        dtype = SAVE_DTYPES[save_config.dtype]
        metadata = {"step": state.step, "format": save_config.format, "name": name}
        lora_path = save_lora(
            run_folder / lora_filename(name, state.step), state.lora_state, save_config.format, dtype, metadata,
            state.lora_alpha, rank=state.lora_rank,
        )
        ema_path = None
        if state.ema_state is not None:
            ema_path = save_lora(
                run_folder / ema_filename(name, state.step), state.ema_state, save_config.format, dtype,
                {**metadata, "ema": True}, state.lora_alpha, rank=state.lora_rank,
            )

        checkpoints = run_folder / CHECKPOINT_DIR
        final = checkpoints / f"step_{state.step:09d}"
        staging = checkpoints / f".step_{state.step:09d}.partial"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        save_lora(
            staging / "lora.safetensors", state.lora_state, "diffusers", torch.float32, metadata, state.lora_alpha,
            fold_strength=False, rank=state.lora_rank,
        )
        if state.ema_state is not None:
            save_lora(
                staging / EMA_CHECKPOINT_FILE, state.ema_state, "diffusers", torch.float32, metadata, state.lora_alpha,
                fold_strength=False, rank=state.lora_rank,
            )
        torch.save(
            {"optimizer": state.optimizer_state, "scheduler": state.scheduler_state, "rng": state.rng_state},
            staging / "training_state.pt",
        )
        (staging / "state.json").write_text(json.dumps({"step": state.step, "lora_alpha": state.lora_alpha, **state.extra}, indent=2))
        (staging / "config.yaml").write_text(config_text)
        _fsync_folder(staging)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        removed = prune(run_folder, name, keep)
        files = [lora_path, *([ema_path] if ema_path else []), *sorted(final.iterdir())]
        span.set(
            files=[str(p) for p in files],
            bytes=sum(p.stat().st_size for p in files),
            lora_bytes=lora_path.stat().st_size,
            removed=removed,
            seconds=time.perf_counter() - started,
        )
    return {"lora": lora_path, "checkpoint": final, **({"ema": ema_path} if ema_path else {})}


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def prune(run_folder: Path, name: str, keep: int) -> list[str]:
    """Keep the newest `keep` step saves (LoRA files and resume folders)."""
    removed = []
    saves = sorted((run_folder / CHECKPOINT_DIR).glob("step_*"))
    for old in saves[:-keep] if keep > 0 else []:
        step = int(old.name.removeprefix("step_"))
        shutil.rmtree(old)
        lora = run_folder / lora_filename(name, step)
        lora.unlink(missing_ok=True)
        (run_folder / ema_filename(name, step)).unlink(missing_ok=True)
        removed.append(old.name)
    return removed


def latest_checkpoint(run_folder: Path) -> Path | None:
    saves = sorted(p for p in (run_folder / CHECKPOINT_DIR).glob("step_*") if (p / "state.json").is_file())
    return saves[-1] if saves else None


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
        )
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise CheckpointError(
            f"cannot resume from {folder}: {error!r}. Delete that folder to resume from the save before it."
        ) from error
