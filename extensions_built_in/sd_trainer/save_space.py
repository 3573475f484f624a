"""Room on the disk for the saves a run will write, checked before the model loads.

A save is the user's LoRA file, the resume folder's copy of the LoRA (float32), the optimizer state
(`training_state.pt`), and with an EMA the same LoRA files again. A resumed run knows its size from
the last save on disk; a new run from the LoRA's parameter count in the memory plan
(`toolkit.dry_run.planned_lora`: the checkpoint's configs on the meta device, no weights read), so a
disk too small stops either before minutes of loading and caching. When the plan cannot size the LoRA
here (an arch without a memory plan, a checkpoint whose configs it cannot read), or sized another one
than the run attached (a checkpoint it took for the published architecture), the new run is checked
once the LoRA is attached, before the first step. The run stops with a FileSystemError when the free
space is short of what the saves still to come need at their peak: the newest save is written before
the oldest is pruned, so up to `save.max_step_saves_to_keep` + 1 saves share the disk, plus the final LoRA.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import FileSystemError
from toolkit.preflight.output_folders import nearest_existing

from .checkpoint_files import CHECKPOINT_DIR, lora_filename, no_ema_filename, save_folder_name, step_saves

SAVE_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
# Bytes of optimizer state per trained parameter: AdamW keeps two float32 moments; the 8-bit AdamW two
# bytes; Prodigy four float32 tensors (moments, its step-size estimate's sums, the starting weights).
OPTIMIZER_STATE_BYTES = {"adamw": 8, "adamw8bit": 2, "prodigy": 16}


def check_room(
    run_folder: Path, name: str, config, start_step: int, outcome: str, lora_params: int | None = None, ema: bool = False
) -> None:
    """FileSystemError when the disk of `run_folder` cannot hold the saves the run will write from `start_step`.

    Their size is the save at `start_step` on disk (a resumed run) or, given `lora_params`, estimated from
    the LoRA's parameter count (a new run). `outcome` says what survives and how to go on.
    """
    room = Room.of(run_folder, name, config, start_step, lora_params, ema)
    if room.free < room.needed:
        raise FileSystemError(
            f"{run_folder}: {_mib(room.free)} free on its disk, but the saves this run will write need about "
            f"{_mib(room.needed)} (save.max_step_saves_to_keep + 1 step saves of {_mib(room.save_bytes)} at the peak, "
            f"and the final LoRA); free some space, lower save.max_step_saves_to_keep, or choose another "
            f"training_folder. {outcome[0].upper()}{outcome[1:]}."
        )


@dataclass(frozen=True)
class Room:
    """The disk space the saves still to come need at their peak (`needed`), one step save's size, and the free
    space on `run_folder`'s disk."""

    save_bytes: int
    needed: int
    free: int

    @classmethod
    def of(
        cls, run_folder: Path, name: str, config, start_step: int, lora_params: int | None = None, ema: bool = False
    ) -> Room:
        if lora_params is None:
            save_bytes, final_bytes = measured_save_bytes(run_folder, name, start_step)
        else:
            save_bytes, final_bytes = estimated_save_bytes(lora_params, config.save.dtype, config.train.optimizer, ema)
        if config.save.keep_best:
            final_bytes *= 2  # <name>_best (and _best_no_ema) beside the final LoRA files, the same size
        saves_on_disk = len(step_saves(run_folder))
        needed = bytes_needed(save_bytes, final_bytes, start_step, config.train, config.save, saves_on_disk)
        return cls(save_bytes, needed, shutil.disk_usage(nearest_existing(run_folder)).free)


def dry_run_room(run_folder: Path, name: str, config) -> str:
    """`--dry-run`'s line on the disk: what the saves of this config need against the free space, for the run as it
    would start now (resumed from the newest save in its folder, or new, sized from the memory plan's LoRA)."""
    from .checkpoints import saved_step

    saves = step_saves(run_folder)
    if saves:
        step = saved_step(saves[-1])
        room, start = Room.of(run_folder, name, config, step), f"resumed at step {step}, its newest save"
    else:
        lora_params, why_not = planned_lora_params(config)
        if lora_params is None:
            return f"Disk for the saves: not sized here ({why_not}); the run checks it once its LoRA is attached."
        room = Room.of(run_folder, name, config, 0, lora_params, config.train.ema_config.use_ema)
        start = "a new run"
    from toolkit.memory_management.plan_format import format_size

    verdict = "ok" if room.free >= room.needed else f"SHORT by {format_size(room.needed - room.free)}"
    return (
        f"Disk for the saves ({start}): about {format_size(room.needed)} at the peak (step saves of "
        f"{format_size(room.save_bytes)}, save.max_step_saves_to_keep + 1 at once, and the final LoRA); "
        f"{format_size(room.free)} free on the disk of {run_folder}: {verdict}."
    )


def check_before_loading(
    run_folder: Path, name: str, config, start_step: int, resumed: bool, outcome: str, logger
) -> int | None:
    """Before the model loads: `check_room` for a resumed run (from its last save) or a new one (from the memory
    plan's LoRA). Returns the LoRA parameter count a new run was checked for, for `check_after_attach`; None when
    it was not (a resumed run, or a plan that could not be made here, which `logger` says)."""
    if resumed:
        check_room(run_folder, name, config, start_step, outcome)
        return None
    lora_params, why_not = planned_lora_params(config)
    if lora_params is None:
        logger.info(
            "Free space for the saves is checked once the LoRA is attached: the memory plan cannot size it before "
            "loading (%s)", why_not,
        )
        return None
    ema = config.train.ema_config.use_ema
    check_room(run_folder, name, config, start_step, outcome, lora_params=lora_params, ema=ema)
    return lora_params


def planned_lora_params(config) -> tuple[int | None, str]:
    """The LoRA's parameter count as the memory plan sizes it from the configs (toolkit.dry_run.planned_lora), or
    None and why it cannot here. Any failure defers to the check once the LoRA is attached, which answers the
    same question, so a plan that cannot be made never stops a run that would load."""
    from toolkit.dry_run import planned_lora

    try:
        return planned_lora(config.model, config.network).params, ""
    except Exception as error:  # noqa: BLE001 - see above
        return None, f"{type(error).__name__}: {error}"


def check_after_attach(
    run_folder: Path, name: str, config, outcome: str, lora_params: int, checked_for: int | None, logger
) -> None:
    """A new run's `check_room` with its attached LoRA's `lora_params`, made only when the check before loading
    was not (`checked_for` None) or sized another LoRA (the plan's architecture was assumed, not read)."""
    if lora_params == checked_for:
        return
    if checked_for is not None:
        logger.info(
            "The memory plan sized the LoRA at %d parameters, the attached one has %d: free space is checked again",
            checked_for, lora_params,
        )
    check_room(run_folder, name, config, 0, outcome, lora_params=lora_params, ema=config.train.ema_config.use_ema)


def estimated_save_bytes(lora_params: int, save_dtype: str, optimizer: str, ema: bool) -> tuple[int, int]:
    """(bytes of one step save, bytes of the final LoRA files) for a LoRA of `lora_params` parameters."""
    user_file = lora_params * SAVE_DTYPE_BYTES[save_dtype]
    lora_copies = (user_file + lora_params * 4) * (2 if ema else 1)
    return lora_copies + lora_params * OPTIMIZER_STATE_BYTES[optimizer], user_file * (2 if ema else 1)


def measured_save_bytes(run_folder: Path, name: str, step: int) -> tuple[int, int]:
    """(bytes of the step save on disk, bytes of its user LoRA files): the sizes of the saves still to come."""
    folder = run_folder / CHECKPOINT_DIR / save_folder_name(step)
    user_files = [run_folder / lora_filename(name, step), run_folder / no_ema_filename(name, step)]
    user_bytes = sum(path.stat().st_size for path in user_files if path.is_file())
    return sum(path.stat().st_size for path in folder.iterdir()) + user_bytes, user_bytes


def bytes_needed(save_bytes: int, final_bytes: int, start_step: int, train, save_config, saves_on_disk: int) -> int:
    """The disk space the rest of the run takes at its peak, beyond what its saves on disk hold already."""
    first = (start_step // save_config.save_every + 1) * save_config.save_every
    ahead = len(range(first, train.steps, save_config.save_every)) + 1  # the last one is the final save
    peak = min(saves_on_disk + ahead, save_config.max_step_saves_to_keep + 1)
    return max(peak - saves_on_disk, 1) * save_bytes + final_bytes


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"
