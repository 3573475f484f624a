"""ai-toolkit's job files read as ours, before validation.

ai-toolkit's UI saves LTX-2 jobs as `type: diffusion_trainer` with keys spelled its way and keys
only its UI reads; its YAML examples use a few other spellings. `read_aitoolkit_keys` rewrites a
raw job mapping in place so the schema sees our names, and returns what it did (`ConfigNotes`)
and the ai-toolkit values this trainer cannot honour (problems, reported with the schema's own).
Our names stay canonical: the validated config, and so every saved config, holds only them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from toolkit.config.frame_rules import adjust_frames_and_sizes
from toolkit.config.notes import ConfigNotes

PROCESS_TYPE_ALIASES = {"diffusion_trainer": "sd_trainer", "ui_trainer": "sd_trainer"}
"""ai-toolkit's UI process types (ui_trainer is its older name) -> our trainer."""

RENAMED: dict[str, dict[str, str]] = {
    "train": {
        "gradient_accumulation_steps": "gradient_accumulation",
        "audio_loss_multiplier": "audio_loss_weight",
        "diff_output_preservation_multiplier": "diff_output_preservation_strength",
    },
    "datasets": {"do_audio": "audio"},
    "sample": {"samples": "prompts"},
}
"""Block of an sd_trainer process ('datasets' = each dataset) -> ai-toolkit spelling -> our key."""


@dataclass(frozen=True)
class UnusedKey:
    """An ai-toolkit key this trainer accepts without using it.

    `inert` lists the values that ask for nothing (any value when empty); another value asks for
    something this trainer does not do, and `otherwise` says so as a problem.
    """

    reason: str
    inert: tuple[Any, ...] = ()
    otherwise: str = ""


_NO_CONV = "LTX-2's transformer has no convolution layers for a LoRA to adapt"
NOT_USED: dict[str, dict[str, UnusedKey]] = {
    "": {
        "sqlite_db_path": UnusedKey("ai-toolkit UI's job database"),
        "performance_log_every": UnusedKey("ai-toolkit's timing printout; timings go to TensorBoard 05_Performance"),
        "monitoring": UnusedKey("ai-toolkit UI's resource monitor; memory goes to TensorBoard 14_System"),
    },
    "logging": {"use_ui_logger": UnusedKey("ai-toolkit UI's logger")},
    "network": {
        "conv": UnusedKey(_NO_CONV),
        "conv_alpha": UnusedKey(_NO_CONV),
        "network_kwargs": UnusedKey(
            "no extra LoRA arguments",
            inert=({}, {"ignore_if_contains": []}),
            otherwise="list the module name suffixes to leave out in network.exclude_modules instead",
        ),
    },
    "save": {"save_format": UnusedKey("ai-toolkit's layout of full-model checkpoints; a LoRA's key layout is save.format")},
    "datasets": {
        "mask_path": UnusedKey("no loss masks", inert=(None, ""), otherwise="this trainer has no loss masks"),
        "mask_min_value": UnusedKey("no loss masks"),
        "control_path": UnusedKey("no control images", inert=(None, ""), otherwise="this trainer has no control images"),
        "controls": UnusedKey("no control images", inert=([],), otherwise="this trainer has no control images"),
        "audio_normalize": UnusedKey(
            "audio is trained at its recorded loudness", inert=(False,), otherwise="audio normalisation is not done"
        ),
        "audio_preserve_pitch": UnusedKey(
            "audio is not time-stretched", inert=(False,), otherwise="audio is never time-stretched here"
        ),
    },
    "train": {
        "auto_scale_batch_size": UnusedKey("ai-toolkit's batch-size search; this trainer uses train.batch_size"),
        "bypass_guidance_embedding": UnusedKey("FLUX's guidance embedding; LTX-2 has none"),
        "switch_boundary_every": UnusedKey("Wan 2.2's two-expert switch; LTX-2 has one transformer"),
        "train_unet": UnusedKey(
            "the LoRA always trains the transformer", inert=(True,), otherwise="the transformer's LoRA is always trained"
        ),
        "train_text_encoder": UnusedKey(
            "the text encoder is not trained", inert=(False,), otherwise="this trainer does not train the text encoder"
        ),
        "noise_scheduler": UnusedKey(
            "LTX-2 trains with flow matching", inert=("flowmatch",), otherwise="LTX-2 trains with flow matching only"
        ),
    },
    "model": {
        "model_kwargs": UnusedKey("LTX-2 takes no extra model arguments", inert=({},), otherwise="LTX-2 takes none")
    },
    "sample": {
        "sampler": UnusedKey(
            "LTX-2 samples with flow matching", inert=("flowmatch",), otherwise="LTX-2 samples with flow matching only"
        )
    },
}
"""Block ('' = the process itself, 'datasets' = each dataset) -> ai-toolkit key -> why it is not used."""


def read_aitoolkit_keys(raw: Any) -> tuple[ConfigNotes, list[str]]:
    """Rewrite ai-toolkit spellings in `raw` (in place); the notes of what changed and the problems found."""
    notes, problems = ConfigNotes(), []
    section = raw.get("config") if isinstance(raw, dict) else None
    processes = section.get("process") if isinstance(section, dict) else None
    if not isinstance(processes, list):
        return notes, problems
    for index, process in enumerate(processes):
        if not isinstance(process, dict):
            continue
        where = f"config.process[{index}]"
        _rename_process_type(process, where, notes)
        if process.get("type") == "sd_trainer":
            _read_trainer_keys(process, where, notes, problems)
        adjust_frames_and_sizes(process, where, notes)
    return notes, problems


def _rename_process_type(process: dict[str, Any], where: str, notes: ConfigNotes) -> None:
    kind = process.get("type")
    if isinstance(kind, str) and kind in PROCESS_TYPE_ALIASES:
        process["type"] = PROCESS_TYPE_ALIASES[kind]
        notes.mapped.append(f"{where}.type: {kind} -> {process['type']}")


def _read_trainer_keys(process: dict[str, Any], where: str, notes: ConfigNotes, problems: list[str]) -> None:
    for block, path, mapping in _blocks(process, where):
        for ai_key, our_key in RENAMED.get(block, {}).items():
            _rename(mapping, path, ai_key, our_key, notes, problems)
        for key, unused in NOT_USED.get(block, {}).items():
            _set_aside(mapping, path, key, unused, notes, problems)
    _move_text_embedding_cache(process, where, notes)
    _move_image_to_video(process, where, notes, problems)
    _move_scheduler_warmup(process, where, notes, problems)


def _blocks(process: dict[str, Any], where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(block name, key path, mapping) of the process, each of its sections and each dataset."""
    yield "", where, process
    for block in ("network", "save", "train", "model", "sample", "logging"):
        if isinstance(process.get(block), dict):
            yield block, f"{where}.{block}", process[block]
    datasets = process.get("datasets")
    for index, dataset in enumerate(datasets if isinstance(datasets, list) else []):
        if isinstance(dataset, dict):
            yield "datasets", f"{where}.datasets[{index}]", dataset


def _rename(
    mapping: dict[str, Any], path: str, ai_key: str, our_key: str, notes: ConfigNotes, problems: list[str]
) -> None:
    if ai_key not in mapping:
        return
    if our_key in mapping:
        del mapping[ai_key]  # reported here, not again as an unknown key
        problems.append(f"{path}.{ai_key}: ai-toolkit's name for {our_key}, which is given too; keep one of them")
        return
    mapping[our_key] = mapping.pop(ai_key)
    notes.mapped.append(f"{path}.{ai_key} -> {our_key}")


def _set_aside(
    mapping: dict[str, Any], path: str, key: str, unused: UnusedKey, notes: ConfigNotes, problems: list[str]
) -> None:
    if key not in mapping:
        return
    value = mapping.pop(key)
    if unused.inert and value not in unused.inert:
        allowed = " or ".join(repr(inert) for inert in unused.inert)
        problems.append(f"{path}.{key}: {value!r} is not supported ({unused.otherwise}); remove it or set {allowed}")
        return
    notes.not_used.append(f"{path}.{key} ({unused.reason})")


def _move_text_embedding_cache(process: dict[str, Any], where: str, notes: ConfigNotes) -> None:
    """ai-toolkit caches caption embeddings per run (train.cache_text_embeddings); we do it per dataset."""
    train = process.get("train")
    if not isinstance(train, dict) or "cache_text_embeddings" not in train:
        return
    value = train.pop("cache_text_embeddings")
    for dataset in _datasets(process):
        dataset.setdefault("cache_text_embeddings", value)
    notes.mapped.append(f"{where}.train.cache_text_embeddings -> datasets[*].cache_text_embeddings")


def _move_image_to_video(process: dict[str, Any], where: str, notes: ConfigNotes, problems: list[str]) -> None:
    """ai-toolkit sets image-to-video per dataset (do_i2v); we set it for the run (train.i2v)."""
    datasets = _datasets(process)
    values = [dataset.pop("do_i2v") for dataset in datasets if "do_i2v" in dataset]
    if not values:
        return
    if any(value != values[0] for value in values):
        problems.append(
            f"{where}.datasets: do_i2v differs between datasets; this trainer sets image-to-video for the whole "
            "run: remove do_i2v and set train.i2v (true, false or a probability)"
        )
        return
    train = process.setdefault("train", {})
    if isinstance(train, dict) and "i2v" not in train:
        train["i2v"] = values[0]
    notes.mapped.append(f"{where}.datasets[*].do_i2v -> train.i2v")


def _move_scheduler_warmup(process: dict[str, Any], where: str, notes: ConfigNotes, problems: list[str]) -> None:
    """ai-toolkit passes its warmup to the schedule (lr_scheduler_params.num_warmup_steps); we set it in train:."""
    train = process.get("train")
    params = train.get("lr_scheduler_params") if isinstance(train, dict) else None
    if not isinstance(params, dict) or "num_warmup_steps" not in params:
        return
    path = f"{where}.train.lr_scheduler_params.num_warmup_steps"
    warmup = params.pop("num_warmup_steps")
    if "lr_warmup_steps" in train:
        problems.append(f"{path}: ai-toolkit's place for train.lr_warmup_steps, which is given too; keep one of them")
        return
    train["lr_warmup_steps"] = warmup
    notes.mapped.append(f"{path} -> train.lr_warmup_steps")


def _datasets(process: dict[str, Any]) -> list[dict[str, Any]]:
    datasets = process.get("datasets")
    return [dataset for dataset in datasets if isinstance(dataset, dict)] if isinstance(datasets, list) else []
