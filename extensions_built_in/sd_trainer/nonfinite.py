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
