"""`train:` section: the optimisation itself."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from toolkit.config.base import ConfigModel, Precision


class TrainConfig(ConfigModel):
    """Batch, steps, optimizer, schedule and loss weights of a training run."""

    batch_size: int = Field(default=1, ge=1, description="Clips per step.")
    steps: int = Field(default=2000, ge=1, description="Optimizer steps to train.")
    gradient_accumulation: int = Field(
        default=1, ge=1, description="Batches whose gradients are summed before each optimizer step."
    )
    lr: float = Field(default=1e-4, gt=0.0, description="Learning rate.")
    optimizer: Literal["adamw", "adamw8bit"] = Field(default="adamw", description="Optimizer.")
    lr_scheduler: Literal["constant", "cosine", "linear"] = Field(
        default="constant", description="Learning-rate schedule after warmup."
    )
    lr_warmup_steps: int = Field(default=0, ge=0, description="Steps of linear warmup from 0 to `lr`.")
    max_grad_norm: float = Field(default=1.0, ge=0.0, description="Gradient clipping norm; 0 disables clipping.")
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute transformer activations in the backward pass to save memory."
    )
    dtype: Precision = Field(default="bf16", description="Autocast dtype of the training step.")
    seed: int = Field(default=42, description="Seed of noise, timesteps and data order.")
    timestep_shift: float = Field(
        default=3.0, gt=0.0, description="Shift of the flow-matching timestep distribution towards high noise."
    )
    video_loss_weight: float = Field(default=1.0, ge=0.0, description="Weight of the video part of the loss.")
    audio_loss_weight: float = Field(default=1.0, ge=0.0, description="Weight of the audio part of the loss.")
    unload_text_encoder: bool = Field(
        default=True,
        description="Free the text encoder once the captions and sample prompts are encoded.",
    )
    skip_first_sample: bool = Field(default=False, description="Do not sample before the first step.")
    disable_sampling: bool = Field(default=False, description="Never sample during training.")
