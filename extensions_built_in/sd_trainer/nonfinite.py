"""Non-finite training: a step whose loss or gradients are NaN or inf is stopped (or skipped), never saved.

Once a NaN reaches the LoRA weights every later step and every save is NaN
too, so the trainer checks each step's loss parts and gradient norm before the
optimizer updates the weights. `train.nonfinite: stop` (the default) raises a
`TrainingError` naming the step, the loss part that went non-finite, the
gradient norm and the last good checkpoint; `skip_step` leaves the weights as
they were, counts the step as skipped and goes on.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from toolkit.errors import TrainingError

GRADIENTS = "gradients"


def nonfinite_parts(loss_parts: dict[str, float], grad_norm: float, check_gradients: bool = True) -> list[str]:
    """Which of the step's loss parts (video, audio, preservation, ...) and `gradients` are NaN or inf."""
    bad = [name for name, value in loss_parts.items() if not math.isfinite(value)]
    if check_gradients and not math.isfinite(grad_norm):
        bad.append(GRADIENTS)
    return bad


def nonfinite_error(
    step: int, bad: list[str], loss_parts: dict[str, float], grad_norm: float, last_checkpoint: Path | None
) -> TrainingError:
    """The error that stops a run at its first non-finite step."""
    named = [f"the {name} loss" if name != GRADIENTS else "the gradients" for name in bad]
    which = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    values = ", ".join(f"{name} {value:.6g}" for name, value in loss_parts.items())
    checkpoint = str(last_checkpoint) if last_checkpoint is not None else "none (nothing was saved before this step)"
    return TrainingError(
        f"step {step}: {which} went non-finite (NaN or inf): {values}; grad norm {grad_norm:.6g}. "
        f"The LoRA was not updated or saved at this step. Last good checkpoint: {checkpoint}. "
        "Lower train.lr (or keep train.max_grad_norm > 0) and run again to resume from that checkpoint, "
        "or set train.nonfinite: skip_step to skip such steps."
    )


class WeightUpdate:
    """The optimizer step of the LoRA behind the loss scaler (fp16) and the non-finite guard.

    `backward` scales the loss, `unscale` brings the gradients back to their true size before they
    are clipped, `apply` steps the optimizer unless the step is not finite (then: stop or skip, as
    `policy` says). With an active GradScaler, non-finite gradients are the scaler's business: it
    skips the step and lowers its scale, so only a non-finite loss counts then.
    """

    def __init__(self, optimizer, scaler: torch.amp.GradScaler, policy: str, last_checkpoint, tracer, logger):
        self.optimizer = optimizer
        self.scaler = scaler
        self.policy = policy
        self.last_checkpoint = last_checkpoint  # () -> Path | None, asked only when a step goes bad
        self.tracer = tracer
        self.logger = logger
        self.skipped = 0

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def unscale(self) -> None:
        self.scaler.unscale_(self.optimizer)

    def apply(self, step: int, loss_parts: dict[str, float], grad_norm: float) -> bool:
        """Step the optimizer; returns whether the weights moved."""
        bad = nonfinite_parts(loss_parts, grad_norm, check_gradients=not self.scaler.is_enabled())
        if bad:
            if self.policy == "stop":
                raise nonfinite_error(step, bad, loss_parts, grad_norm, self.last_checkpoint())
            self._skip(step, bad, grad_norm)
            return False
        scale_before = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return scale_before is None or self.scaler.get_scale() >= scale_before

    def _skip(self, step: int, bad: list[str], grad_norm: float) -> None:
        self.skipped += 1
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.update()
        self.tracer.event("nonfinite_step_skipped", step=step, parts=bad, grad_norm=grad_norm, skipped=self.skipped)
        self.logger.warning(
            "step %d: non-finite %s (grad norm %.4g); skipped its weight update (train.nonfinite: skip_step), "
            "%d skipped so far", step, ", ".join(bad), grad_norm, self.skipped,
        )
