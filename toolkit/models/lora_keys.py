"""How an arch names the LoRA files trained on it: its original key names and its name in LoRA browsers.

Plain dataclasses the model class fills in (`BaseModel.lora_file_keys()`, `BaseModel.base_model_names()`)
and the LoRA file formats (toolkit/network/formats.py) and the trainer's file header read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoraFileKeys:
    """How one arch's LoRA keys are named in the original (ComfyUI / the model authors') file format.

    `to_original` maps one peft/diffusers module or parameter name (``transformer_blocks.0.attn1.to_q``)
    to the original checkpoint's name; `to_diffusers` turns a whole original-format state dict
    (keys under ``diffusion_model.``) into diffusers keys (under ``transformer.``).
    """

    to_original: Callable[[str], str]
    to_diffusers: Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class BaseModelNames:
    """How LoRA browsers and UIs name a base model: what a LoRA file's `modelspec.*` and `ss_*` header keys say.

    `architecture` is the SAI model spec's base architecture (``ltx-2.3``; a LoRA file's
    `modelspec.architecture` is ``<architecture>/lora``); `implementations` maps each `save.format` to
    whose key names that format uses (`modelspec.implementation`).
    """

    architecture: str
    implementations: Mapping[str, str]
