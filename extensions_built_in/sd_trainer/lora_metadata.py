"""What a LoRA file tells the LoRA browsers and UIs that show it: title, base model, trigger word, training.

Beside this project's own header entries (`lora_adapter_metadata` for diffusers, `trained_alpha`,
`trained_rank`, `strength_in_weights`, `ltx2_version`, `step`, `format`, `name`), each LoRA file
the trainer writes carries the two conventions those tools read:

- the SAI model spec (`modelspec.*`, version 1.0.0): `architecture` is `<base model>/<adapter>`
  (e.g. `ltx-2.3/lora`), `implementation` says whose key names the file uses (the original
  layout's authors, or diffusers), then title, resolution, trigger phrase and date;
- kohya sd-scripts' training keys (`ss_*`), which A1111/Forge, Civitai and LoRA managers show:
  base model version, network dim/alpha (the trained values; the weights already carry
  alpha / dim), steps, clip counts, resolution, learning rate, optimizer and schedule; with a
  trigger word also `ss_tag_frequency`, where those UIs look for it.

And, for video, what the clips were: `num_frames`, `fps` and `resolution` (width x height) of
the trained clips, each a comma-separated list when the buckets differ. Every value is a string
(safetensors metadata holds only strings); no loader reads these keys, so they cannot change
how a file loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

MODELSPEC_VERSION = "1.0.0"


@dataclass(frozen=True)
class TrainedClips:
    """What the run trained on: each training clip's (frames, height, width, fps), and the regularisation count."""

    shapes: tuple[tuple[int, int, int, float], ...]
    regularisation: int

    @classmethod
    def of(cls, examples: Iterable) -> TrainedClips:
        examples = list(examples)
        shapes = tuple((*example.pixel_shape, example.fps) for example in examples if not example.is_reg)
        return cls(shapes, sum(example.is_reg for example in examples))


def run_metadata(config, job_name: str, base_model, network_kind: str, clips: TrainedClips) -> dict[str, str]:
    """The entries that stay the same for every file of the run (`config`: the sd_trainer process config;
    `base_model`: the model's `BaseModelNames`, or None when it does not name itself)."""
    train, network = config.train, config.network
    frames = _joined(shape[0] for shape in clips.shapes)
    sizes = _joined(f"{width}x{height}" for _, height, width, _ in clips.shapes)
    largest = max(clips.shapes, key=lambda shape: shape[1] * shape[2]) if clips.shapes else None
    entries = {
        "modelspec.sai_model_spec": MODELSPEC_VERSION,
        "modelspec.title": job_name,
        "ss_output_name": job_name,
        "ss_network_dim": str(network.linear),
        "ss_network_alpha": _number(network.linear_alpha),
        "ss_max_train_steps": str(train.steps),
        "ss_num_train_images": str(len(clips.shapes)),
        "ss_num_reg_images": str(clips.regularisation),
        "ss_learning_rate": _number(train.lr),
        "ss_optimizer": train.optimizer,
        "ss_lr_scheduler": train.lr_scheduler,
        "ss_batch_size_per_device": str(train.batch_size),
        "num_frames": frames,
        "fps": _joined(_number(shape[3]) for shape in clips.shapes),
        "resolution": sizes,
    }
    if largest is not None:
        entries["modelspec.resolution"] = f"{largest[2]}x{largest[1]}"
        entries["ss_resolution"] = f"({largest[2]}, {largest[1]})"
    if network_kind == "lokr":
        args = {"algo": "lokr", "factor": network.lokr_factor, "full_matrix": network.lokr_full_rank}
        entries["ss_network_args"] = json.dumps(args)
    if base_model is not None:
        entries["modelspec.architecture"] = f"{base_model.architecture}/{network_kind}"
        entries["ss_base_model_version"] = base_model.architecture
    if config.trigger_word:
        entries["modelspec.trigger_phrase"] = config.trigger_word
        entries["ss_tag_frequency"] = json.dumps({f"1_{config.trigger_word}": {config.trigger_word: 1}})
    return entries


def file_metadata(run_entries: dict[str, str], base_model, fmt: str, step: int, now: datetime | None = None) -> dict[str, str]:
    """`run_entries` plus what one file adds: its step, its date and whose key names it uses (`fmt`)."""
    entries = {**run_entries, "ss_steps": str(step)}
    entries["modelspec.date"] = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    if base_model is not None and fmt in base_model.implementations:
        entries["modelspec.implementation"] = base_model.implementations[fmt]
    return entries


def _joined(values: Iterable) -> str:
    """Distinct values in first-seen order, comma-separated."""
    return ",".join(dict.fromkeys(str(value) for value in values))


def _number(value: float) -> str:
    """`24` for 24.0, `0.0001` for 1e-4: as a person would write it."""
    return f"{value:g}" if float(value) != int(value) else str(int(value))
