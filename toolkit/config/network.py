"""`network:` and `save:` sections: the LoRA that is trained and how its files are written."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from toolkit.config.base import ConfigModel, SaveDtype


class NetworkConfig(ConfigModel):
    """The LoRA adapter added to the transformer."""

    type: Literal["lora", "lokr"] = Field(
        default="lora",
        description="Adapter kind: lora (low-rank B @ A) or lokr (Kronecker product of two factors, as in LyCORIS).",
    )
    linear: int = Field(default=16, ge=1, description="Rank of the adapted linear layers (LoRA rank; LoKr's low rank).")
    linear_alpha: float = Field(default=16.0, description="LoRA alpha; the update is scaled by alpha / rank.")
    lokr_full_rank: bool = Field(
        default=False,
        description="With type lokr: train the larger Kronecker factor at full size instead of as a rank-`linear` product.",
    )
    lokr_factor: int = Field(
        default=-1,
        description=(
            "With type lokr: size of the smaller Kronecker factor of each layer's dimensions; "
            "-1 picks the factor nearest the square root."
        ),
    )
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
    @field_validator("lokr_factor")
    @classmethod
    def _factor_is_positive_or_auto(cls, factor: int) -> int:
        if factor == -1 or factor >= 1:
            return factor
        raise ValueError(f"lokr_factor {factor} must be -1 (automatic) or a whole number of 1 or more")

    pretrained_lora_path: str | None = Field(
        default=None, description="LoRA .safetensors to start from instead of a fresh adapter."
    )


class SaveConfig(ConfigModel):
    """When and how LoRA checkpoints are written."""

    dtype: SaveDtype = Field(
        default="float16", description="Dtype of the saved LoRA weights (bf16/fp16/fp32 are accepted too)."
    )
    save_every: int = Field(default=250, ge=1, description="Save a LoRA checkpoint every N steps.")
    max_step_saves_to_keep: int = Field(
        default=4, ge=1, description="How many step checkpoints to keep; older ones are deleted."
    )
    format: Literal["diffusers", "comfy"] = Field(
        default="comfy",
        description=(
            "Key layout of every LoRA file a run writes (final, step saves, EMA): comfy, the original LTX-2 "
            "layout (`diffusion_model.` + original module names) that ComfyUI, Lightricks' ltx-core, ai-toolkit "
            "and diffusers' load_lora_weights read; or diffusers (`transformer.` + diffusers names), which only "
            "diffusers reads."
        ),
    )
    keep_best: bool = Field(
        default=False,
        description=(
            "Keep the LoRA with the lowest evaluation loss as <name>_best.safetensors (with an EMA: the EMA's, "
            "judged by its own loss, and the trained weights' as <name>_best_no_ema); needs train.eval_every. Its step and loss are in each checkpoint's state.json."
        ),
    )
    push_to_hub: bool = Field(
        default=False,
        description=(
            "After the final save, upload the LoRA files to the Hugging Face Hub repo `hf_repo_id` "
            "(huggingface_hub; the local files are written first)."
        ),
    )
    hf_repo_id: str | None = Field(
        default=None, description="Hub repo (user/name) that `push_to_hub` uploads to; required when it is on."
    )
    hf_private: bool = Field(default=False, description="Create the `hf_repo_id` repo as private when it does not exist.")

    @model_validator(mode="after")
    def _push_needs_a_repo(self) -> SaveConfig:
        if self.push_to_hub and not self.hf_repo_id:
            raise ValueError("push_to_hub needs hf_repo_id (the Hub repo, user/name); set it or switch push_to_hub off")
        return self
