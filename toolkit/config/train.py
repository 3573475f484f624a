"""`train:` section: the optimisation itself."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from toolkit.config.base import ConfigModel, Precision


LRSchedulerName = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "piecewise_constant",
]
"""The schedule names of diffusers.optimization.SchedulerType (a test keeps the two lists equal)."""


class EMAConfig(ConfigModel):
    """Exponential moving average of the LoRA weights (ai-toolkit's `ema_config`)."""

    use_ema: bool = Field(
        default=False,
        description=(
            "Keep an EMA of the LoRA weights, sample with it and save it as the LoRA file, as ai-toolkit does; "
            "the trained weights go beside it (<name>_no_ema.safetensors)."
        ),
    )
    ema_decay: float = Field(
        default=0.999,
        gt=0.0,
        lt=1.0,
        description=(
            "EMA decay: after update n, ema = d * ema + (1 - d) * weights with d = min(ema_decay, (1 + n) / (10 + n)), "
            "starting from the initial weights (ai-toolkit's EMA)."
        ),
    )


class TrainConfig(ConfigModel):
    """Batch, steps, optimizer, schedule and loss weights of a training run."""

    batch_size: int = Field(default=1, ge=1, description="Clips per step.")
    steps: int = Field(default=2000, ge=1, description="Optimizer steps to train.")
    gradient_accumulation: int = Field(
        default=1, ge=1, description="Batches whose gradients are summed before each optimizer step."
    )
    lr: float = Field(default=1e-4, gt=0.0, description="Learning rate.")
    optimizer: Literal["adamw", "adamw8bit", "prodigy"] = Field(
        default="adamw",
        description=(
            "Optimizer: adamw (torch), adamw8bit (bitsandbytes 8-bit AdamW, CUDA or CPU) or prodigy (prodigyopt; "
            "learning-rate free, use lr: 1)."
        ),
    )
    optimizer_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments passed to the optimizer as they are (e.g. weight_decay, betas, eps).",
    )
    lr_scheduler: LRSchedulerName = Field(
        default="constant",
        description="Learning-rate schedule: any name diffusers.optimization.get_scheduler knows.",
    )
    lr_scheduler_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra arguments of the schedule passed to get_scheduler (e.g. num_cycles, power).",
    )
    lr_warmup_steps: int = Field(default=0, ge=0, description="Steps of linear warmup from 0 to `lr`.")
    max_grad_norm: float = Field(default=1.0, ge=0.0, description="Gradient clipping norm; 0 disables clipping.")
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute transformer activations in the backward pass to save memory."
    )
    weight_decay: float | None = Field(
        default=None,
        ge=0.0,
        description=(
            "Weight decay of the LoRA weights; null keeps the optimizer's own (AdamW and AdamW8bit: 0.01, "
            "Prodigy: 0), as ai-toolkit does. optimizer_params.weight_decay overrides it."
        ),
    )
    nonfinite: Literal["stop", "skip_step"] = Field(
        default="stop",
        description=(
            "What to do when a step's loss or gradients are NaN or infinite: stop with an error naming the step "
            "and the last good checkpoint, or skip that step's weight update (counted and logged) and go on."
        ),
    )
    dtype: Precision = Field(default="bf16", description="Autocast dtype of the training step.")
    seed: int = Field(default=42, description="Seed of noise, timesteps and data order.")
    timestep_type: Literal["sigmoid", "linear", "shift", "weighted", "lognorm_blend"] = Field(
        default="sigmoid",
        description=(
            "How training noise levels are drawn: sigmoid (logit-normal around the middle), linear (uniform), "
            "shift (uniform shifted by `timestep_shift` towards high noise), weighted (more weight to the middle), "
            "lognorm_blend (mostly logit-normal, some uniform)."
        ),
    )
    content_or_style: Literal["balanced", "content", "style"] = Field(
        default="balanced",
        description="Bias the noise levels: content favours high noise (composition, motion), style low noise (detail).",
    )
    loss_type: Literal["mse", "mae"] = Field(
        default="mse", description="Loss between prediction and target: mse (squared error) or mae (absolute error)."
    )
    timestep_shift: float = Field(
        default=3.0, gt=0.0, description="With timestep_type shift: how far noise levels are shifted towards high noise."
    )
    video_loss_weight: float = Field(default=1.0, ge=0.0, description="Weight of the video part of the loss.")
    audio_loss_weight: float = Field(default=1.0, ge=0.0, description="Weight of the audio part of the loss.")
    unload_text_encoder: bool = Field(
        default=True,
        description="Free the text encoder once the captions and sample prompts are encoded.",
    )
    skip_first_sample: bool = Field(default=False, description="Do not sample before the first step.")
    force_first_sample: bool = Field(
        default=False,
        description="Sample before the first step even when resuming from a checkpoint (skip_first_sample wins, as in ai-toolkit).",
    )
    disable_sampling: bool = Field(default=False, description="Never sample during training.")
    distributed_timeout_minutes: float = Field(
        default=120.0,
        gt=0.0,
        description=(
            "With more than one process (accelerate launch / torchrun): how long a process waits for the others "
            "(the main process encoding caches or sampling, each step's gradient exchange) before the run stops "
            "with an error."
        ),
    )
    i2v: bool | float = Field(
        default=False,
        description=(
            "Image-to-video training: true keeps every clip's first latent frame clean as the condition "
            "(timestep 0, left out of the video loss); a number in 0..1 is the probability per clip."
        ),
    )
    eval_every: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Evaluate the held-out clips (datasets with is_val, or validation_split) every N steps, before the "
            "first step and at the end: the loss at fixed noise levels with fixed noise, no gradients "
            "(docs/evaluation.md). null: no evaluation."
        ),
    )
    validation_split: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description=(
            "Hold out this fraction of the training clips (at least one; chosen by a seeded hash of the file "
            "names) and evaluate them instead of training on them. null: only is_val datasets are held out."
        ),
    )
    eval_noise_levels: int = Field(
        default=5,
        ge=1,
        le=20,
        description=(
            "Noise levels each held-out clip is evaluated at: the middles of that many equally likely slices of "
            "the training noise-level distribution (timestep_type, content_or_style, timestep_shift)."
        ),
    )
    eval_batch_size: int | None = Field(
        default=None,
        ge=1,
        description=(
            "(clip, noise level) pairs per evaluation forward; null: batch_size (a forward without gradients "
            "never needs more memory than a training step of the same batch)."
        ),
    )
    ema_config: EMAConfig = Field(default_factory=EMAConfig, description="EMA of the LoRA weights.")
    diff_output_preservation: bool = Field(
        default=False,
        description=(
            "Differential output preservation: also predict the caption with the trigger word replaced by "
            "`diff_output_preservation_class`, with the LoRA off and on, and penalise their difference "
            "(needs `trigger_word`)."
        ),
    )
    diff_output_preservation_strength: float = Field(
        default=1.0, ge=0.0, description="Weight of the preservation loss added to the training loss."
    )
    diff_output_preservation_class: str = Field(
        default="person",
        min_length=1,
        description="Class word that replaces the trigger word in the preservation captions (e.g. person, dog, style).",
    )

    @field_validator("i2v")
    @classmethod
    def _i2v_is_a_probability(cls, i2v: bool | float) -> bool | float:
        if isinstance(i2v, bool) or 0.0 <= i2v <= 1.0:
            return i2v
        raise ValueError(f"{i2v} is neither true/false nor a probability in 0..1")

    @field_validator("optimizer_params", "lr_scheduler_params")
    @classmethod
    def _numbers_written_as_yaml_strings(cls, params: dict[str, Any]) -> dict[str, Any]:
        """YAML 1.1 (PyYAML) reads `1e-4` without a dot as a string; these arguments are numbers, so read them so
        (ai-toolkit's configs write `weight_decay: 1e-4`)."""
        return {name: _number_or_text(value) for name, value in params.items()}

    @property
    def i2v_probability(self) -> float:
        """The chance that a clip is trained image-to-video (0 when off, 1 for `i2v: true`)."""
        return float(self.i2v)


def _number_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
