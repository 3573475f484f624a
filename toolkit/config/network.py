"""`network:` and `save:` sections: the LoRA that is trained and how its files are written."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from toolkit.config.base import ConfigModel


class NetworkConfig(ConfigModel):
    """The LoRA adapter added to the transformer."""

    type: Literal["lora"] = Field(default="lora", description="Adapter kind; only LoRA is supported.")
    linear: int = Field(default=16, ge=1, description="LoRA rank of the adapted linear layers.")
    linear_alpha: float = Field(default=16.0, description="LoRA alpha; the update is scaled by alpha / rank.")
    dropout: float = Field(default=0.0, ge=0.0, le=1.0, description="Dropout on the LoRA path (0..1).")
    target_modules: list[str] | None = Field(
        default=None,
        description=(
            "Module name suffixes to adapt (e.g. to_q, ff.net.0.proj); "
            "null adapts LTX-2's video and audio attention and feed-forward layers."
        ),
    )
    exclude_modules: list[str] = Field(
        default_factory=list,
        description=(
            "Module name suffixes never adapted, even when targeted; whole dotted parts only, so "
            "attn1.to_q excludes transformer_blocks.0.attn1.to_q but not audio_attn1.to_q."
        ),
    )
    pretrained_lora_path: str | None = Field(
        default=None, description="LoRA .safetensors to start from instead of a fresh adapter."
    )


class SaveConfig(ConfigModel):
    """When and how LoRA checkpoints are written."""

    dtype: Literal["float16", "bfloat16", "float32"] = Field(
        default="float16", description="Dtype of the saved LoRA weights."
    )
    save_every: int = Field(default=250, ge=1, description="Save a LoRA checkpoint every N steps.")
    max_step_saves_to_keep: int = Field(
        default=4, ge=1, description="How many step checkpoints to keep; older ones are deleted."
    )
    format: Literal["diffusers", "comfy"] = Field(
        default="diffusers",
        description="Key layout of the saved file: diffusers (load_lora_weights) or comfy (original LTX-2 names).",
    )
