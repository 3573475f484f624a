"""What observers of training (TensorBoard, inspection, EMA) plug into.

The trainer calls every callback at fixed points. A callback that needs the
tensors of a step (inputs, noise, prediction, target) says so through
`wants_details(step)`; only then does the trainer keep them, so a run
without such callbacks pays nothing for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from toolkit.models.model_inputs import PromptEmbeds

from .gradient_clipping import ClippedGradients


@dataclass
class StepResult:
    """The numbers of one optimizer step."""

    loss: float
    video_loss: float
    audio_loss: float
    grad_norm: float
    lr: float
    seconds: float
    samples: int = 1
    aux_losses: dict[str, float] = field(default_factory=dict)
    data_seconds: float = 0.0  # of `seconds`, the time spent assembling the batch (latents, noise, prompts)
    skipped: bool = False  # the weights were not updated (non-finite step under train.nonfinite: skip_step)
    gradients: ClippedGradients | None = None  # each gradient's norm, from the clipping (none under FSDP)


@dataclass
class StepDetails:
    """The last micro-batch's tensors of a step, kept only when a callback asked for them."""

    step: int
    captions: list[str]
    paths: list[str]
    sigmas: torch.Tensor  # (B,)
    video_latents: torch.Tensor  # clean (B, C, F, H, W)
    audio_latents: torch.Tensor  # clean (B, C, L, M)
    noisy_video: torch.Tensor
    noisy_audio: torch.Tensor
    video_prediction: torch.Tensor
    audio_prediction: torch.Tensor
    video_target: torch.Tensor
    audio_target: torch.Tensor
    prompt: PromptEmbeds  # of the batch
    fps: list[float]  # per clip, as the transformer got them
    video_loss_mask: torch.Tensor | None = None


class TrainingCallback:
    """Base class: every hook does nothing."""

    def wants_details(self, step: int) -> bool:
        return False

    def on_train_start(self, trainer) -> None:
        pass

    def on_optimizer_step(self, trainer, step: int) -> None:
        """Right after the optimizer updated the weights, inside the step's trace span (EMA updates here)."""

    def on_step_end(self, trainer, step: int, result: StepResult, details: StepDetails | None) -> None:
        pass

    def on_sample(self, trainer, step: int, paths: list[Path]) -> None:
        pass

    def on_save(self, trainer, step: int, folder: Path) -> None:
        pass

    def on_train_end(self, trainer) -> None:
        pass
