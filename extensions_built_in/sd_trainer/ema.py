"""EMA of the LoRA weights, kept by diffusers' `EMAModel` and updated after each optimizer step.

It is ai-toolkit's EMA (toolkit/ema.py, `ExponentialMovingAverage` with its update count): the
average starts from the adapter's initial weights, and update n blends at
`min(ema_decay, (1 + n) / (10 + n))`, so early updates follow the weights closely and later ones
settle at `train.ema_config.ema_decay`. diffusers' `EMAModel` computes exactly that with
`update_after_step=-1` and no minimum decay. The EMA is a training callback (updated through
`on_optimizer_step`, inside the step's trace span), saved as the LoRA file (the trained weights
beside it, checkpoints.py), restored on resume, and swapped into the adapter while samples are made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from toolkit.trace import get_tracer

from .callbacks import TrainingCallback


class LoraEMA(TrainingCallback):
    """A float32 moving average of every trainable LoRA weight."""

    def __init__(self, network, decay: float):
        self.network = network
        self.decay = decay
        # The parameter objects are kept: the adapter's own list omits them while it is disabled.
        self.parameters = dict(network.named_parameters())
        self.average = self._new_average()

    def _new_average(self):
        # Imported here: diffusers.training_utils brings diffusers' UNets and schedulers, which a run without EMA never uses.
        from diffusers.training_utils import EMAModel

        # update_after_step=-1: update n uses min(decay, (1 + n) / (10 + n)), from the weights as they are now.
        average = EMAModel(list(self.parameters.values()), decay=self.decay, min_decay=0.0, update_after_step=-1)
        average.to(dtype=torch.float32)
        return average

    def reset(self) -> None:
        """Start over from the adapter's current weights (a resume from a save without EMA weights)."""
        self.average = self._new_average()

    def on_optimizer_step(self, trainer, step: int) -> None:
        self.update(step)

    def update(self, step: int) -> None:
        self.average.step(list(self.parameters.values()))
        get_tracer().event(
            "ema_update", step=step, decay=self.average.cur_decay_value, tensors=len(self.average.shadow_params)
        )

    @contextlib.contextmanager
    def _swapped(self) -> Iterator[None]:
        """Inside, the adapter's parameters hold the EMA weights; the trained ones come back on exit."""
        parameters = list(self.parameters.values())
        self.average.store(parameters)
        self.average.copy_to(parameters)
        try:
            yield
        finally:
            self.average.restore(parameters)

    @contextlib.contextmanager
    def applied(self, reason: str) -> Iterator[None]:
        """Inside, the adapter holds the EMA weights; the trained weights come back on exit."""
        get_tracer().event("ema_weights", action="swapped in", reason=reason, decay=self.decay)
        with self._swapped():
            yield

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA weights under the LoRA's key names, as a LoRA file holds them."""
        with self._swapped():
            return {name: tensor.detach().clone() for name, tensor in self.network.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Restore EMA weights saved by `state_dict` after `updates` optimizer steps (the trained weights stay)."""
        with self._swapped():
            self.network.load_state_dict(state)
            restored = [parameter.detach().float().clone() for parameter in self.parameters.values()]
        self.average.load_state_dict({"shadow_params": restored, "optimization_step": updates})
