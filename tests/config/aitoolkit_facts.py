"""What ai-toolkit writes for an LTX-2 job, written down as facts for the compatibility tests.

Sources (ostris/ai-toolkit, read by us; values re-typed, nothing copied as a file):
- `ui/src/app/jobs/new/jobConfig.ts`: `defaultJobConfig` (the job a new UI job starts from) and
  `defaultDatasetConfig` (each dataset it adds).
- `ui/src/app/jobs/new/options.tsx`: the `ltx2` entry of `modelArchs`; its `defaults` map a key
  path to `[value when selected, value when unselected]`, and `datasets[x]` means every dataset.
- `config/examples/*.yaml` (train_lora_wan22_14b_24gb.yaml, train_lora_flux_24gb.yaml): the shape
  and spellings of a hand-written ai-toolkit YAML, used for `AITOOLKIT_LTX2_YAML`.

The UI saves the job as JSON: `ui_ltx2_job()` is that JSON's content. Paths and `name_or_path` are
the only things a test replaces.
"""

from __future__ import annotations

import copy
import re
from typing import Any

DEFAULT_DATASET: dict[str, Any] = {
    "folder_path": "/path/to/images/folder",
    "mask_path": None,
    "mask_min_value": 0.1,
    "default_caption": "",
    "caption_ext": "txt",
    "caption_dropout_rate": 0.05,
    "cache_latents_to_disk": False,
    "is_reg": False,
    "network_weight": 1,
    "resolution": [512, 768, 1024],
    "controls": [],
    "shrink_video_to_frames": True,
    "num_frames": 1,
    "do_i2v": True,
    "flip_x": False,
    "flip_y": False,
}

SAMPLE_PROMPTS = [
    "woman with red hair, playing chess at the park, bomb going off in the background",
    "a woman holding a coffee cup, in a beanie, sitting at a cafe",
    "a horse is a DJ at a night club, fish eye lens, smoke machine, lazer lights, holding a martini",
    "a man showing off his cool new t shirt at the beach, a shark is jumping out of the water in the background",
    "a bear building a log cabin in the snow covered mountains",
    "woman playing the guitar, on stage, singing a song, laser lights, punk rocker",
    "hipster man with a beard, building a chair, in a wood shop",
    "photo of a man, white background, medium shot, modeling clothing, studio lighting, white backdrop",
    "a man holding a sign that says, 'this is a sign'",
    "a bulldog, in a post apocalyptic world, with a shotgun, in a leather jacket, in a desert, with a motorcycle",
]

DEFAULT_JOB: dict[str, Any] = {
    "job": "extension",
    "config": {
        "name": "my_first_lora_v1",
        "process": [
            {
                "type": "diffusion_trainer",
                "training_folder": "output",
                "sqlite_db_path": "./aitk_db.db",
                "device": "cuda",
                "trigger_word": None,
                "performance_log_every": 10,
                "network": {
                    "type": "lora",
                    "linear": 32,
                    "linear_alpha": 32,
                    "conv": 16,
                    "conv_alpha": 16,
                    "lokr_full_rank": True,
                    "lokr_factor": -1,
                    "network_kwargs": {"ignore_if_contains": []},
                },
                "save": {
                    "dtype": "bf16",
                    "save_every": 250,
                    "max_step_saves_to_keep": 4,
                    "save_format": "diffusers",
                    "push_to_hub": False,
                },
                "datasets": [DEFAULT_DATASET],
                "train": {
                    "batch_size": 1,
                    "auto_scale_batch_size": True,
                    "bypass_guidance_embedding": True,
                    "steps": 3000,
                    "gradient_accumulation": 1,
                    "train_unet": True,
                    "train_text_encoder": False,
                    "gradient_checkpointing": True,
                    "noise_scheduler": "flowmatch",
                    "optimizer": "adamw8bit",
                    "timestep_type": "sigmoid",
                    "content_or_style": "balanced",
                    "optimizer_params": {"weight_decay": 1e-4},
                    "unload_text_encoder": False,
                    "cache_text_embeddings": False,
                    "lr": 0.0001,
                    "ema_config": {"use_ema": False, "ema_decay": 0.99},
                    "skip_first_sample": True,
                    "force_first_sample": False,
                    "disable_sampling": False,
                    "dtype": "bf16",
                    "diff_output_preservation": False,
                    "diff_output_preservation_multiplier": 1.0,
                    "diff_output_preservation_class": "person",
                    "switch_boundary_every": 1,
                    "loss_type": "mse",
                },
                "model": {
                    "name_or_path": "ostris/Flex.1-alpha",
                    "quantize": True,
                    "qtype": "qfloat8",
                    "quantize_te": True,
                    "qtype_te": "qfloat8",
                    "arch": "flex1",
                    "low_vram": False,
                    "model_kwargs": {},
                },
                "sample": {
                    "sampler": "flowmatch",
                    "sample_every": 250,
                    "width": 1024,
                    "height": 1024,
                    "samples": [{"prompt": prompt} for prompt in SAMPLE_PROMPTS],
                    "neg": "",
                    "seed": 42,
                    "walk_seed": True,
                    "guidance_scale": 4,
                    "sample_steps": 25,
                    "num_frames": 1,
                    "fps": 1,
                },
                "monitoring": {
                    "enabled": True,
                    "sample_interval_seconds": 5,
                    "track_per_process": True,
                    "analyze_on_complete": True,
                    "memory_warning_threshold": 0.85,
                    "memory_critical_threshold": 0.95,
                },
            }
        ],
    },
    "meta": {"name": "[name]", "version": "1.0"},
}

LTX2_OPTION_DEFAULTS: dict[str, tuple[Any, Any]] = {
    "config.process[0].model.name_or_path": ("Lightricks/LTX-2", ""),
    "config.process[0].model.quantize": (True, False),
    "config.process[0].model.quantize_te": (True, False),
    "config.process[0].model.low_vram": (True, False),
    "config.process[0].sample.sampler": ("flowmatch", "flowmatch"),
    "config.process[0].train.noise_scheduler": ("flowmatch", "flowmatch"),
    "config.process[0].sample.num_frames": (121, 1),
    "config.process[0].sample.fps": (24, 1),
    "config.process[0].sample.width": (768, 1024),
    "config.process[0].sample.height": (768, 1024),
    "config.process[0].train.audio_loss_multiplier": (1.0, None),
    "config.process[0].train.timestep_type": ("weighted", "sigmoid"),
    "config.process[0].datasets[x].do_i2v": (False, None),
    "config.process[0].datasets[x].do_audio": (True, None),
    "config.process[0].datasets[x].fps": (24, None),
    "config.process[0].datasets[x].auto_frame_count": (False, None),
}
"""The `ltx2` option's defaults; `None` stands for the UI's `undefined` (the key is left out)."""

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\w+)\]")


def _set_path(job: dict[str, Any], path: str, value: Any) -> None:
    parts: list[str | int] = []
    for name, index in _PATH_PART.findall(path):
        parts.append(name if name else (index if index == "x" else int(index)))
    targets: list[Any] = [job]
    for part in parts[:-1]:
        if part == "x":
            targets = [item for target in targets for item in target]
        else:
            targets = [target[part] for target in targets]
    for target in targets:
        target[parts[-1]] = value


def ui_ltx2_job() -> dict[str, Any]:
    """The job the ai-toolkit UI saves after picking LTX-2 on a new job: default job + the option's values."""
    job = copy.deepcopy(DEFAULT_JOB)
    job["config"]["process"][0]["model"]["arch"] = "ltx2"
    for path, (selected, _unselected) in LTX2_OPTION_DEFAULTS.items():
        _set_path(job, path, selected)
    return job


AITOOLKIT_LTX2_YAML = """\
# An ai-toolkit style job (shape and spellings of its config/examples) with arch ltx2.
---
job: extension
config:
  name: "my_first_ltx2_lora_v1"
  process:
    - type: 'sd_trainer'
      training_folder: "output"
      performance_log_every: 1000
      device: cuda:0
      trigger_word: "p3r5on"
      network:
        type: "lora"
        linear: 32
        linear_alpha: 32
      save:
        dtype: float16
        save_every: 250
        max_step_saves_to_keep: 4
        push_to_hub: false
      datasets:
        - folder_path: "/path/to/images/or/video/folder"
          caption_ext: "txt"
          caption_dropout_rate: 0.05
          shuffle_tokens: false
          cache_latents_to_disk: true
          num_frames: 40
          resolution: [ 512, 768, 1024 ]
      train:
        batch_size: 1
        steps: 2000
        gradient_accumulation_steps: 1
        train_unet: true
        train_text_encoder: false
        gradient_checkpointing: true
        noise_scheduler: "flowmatch"
        timestep_type: 'linear'
        optimizer: "adamw8bit"
        lr: 1e-4
        optimizer_params:
          weight_decay: 1e-4
        ema_config:
          use_ema: true
          ema_decay: 0.99
        dtype: bf16
        cache_text_embeddings: true
      model:
        name_or_path: "Lightricks/LTX-2"
        arch: 'ltx2'
        quantize: true
        qtype: "qfloat8"
        quantize_te: true
        qtype_te: "qfloat8"
        low_vram: true
      sample:
        sampler: "flowmatch"
        sample_every: 250
        sample_start_step: 0
        width: 1000
        height: 1000
        num_frames: 40
        fps: 24
        prompts:
          - "[trigger] holding a sign that says 'I LOVE PROMPTS!'"
          - "woman with red hair, playing chess at the park, bomb going off in the background"
        neg: ""
        seed: 42
        walk_seed: true
        guidance_scale: 4
        sample_steps: 25
meta:
  name: "[name]"
  version: '1.0'
"""
"""ai-toolkit-style YAML for LTX-2; 40 frames and 1000 px are values ai-toolkit takes and LTX-2 must adjust."""


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path in a job mapping, lists of mappings written with [i] (e.g. `config.process[0].train.lr`)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= key_paths(item, path)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            paths |= key_paths(item, f"{prefix}[{index}]")
    return paths
