"""EMA of the LoRA weights: ema = decay * ema + (1 - decay) * weights, after each optimizer step.

The EMA is a training callback (updated through `on_optimizer_step`, inside
the step's trace span), saved beside the LoRA under the LoRA's own key names,
restored on resume, and swapped into the adapter while samples are made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from toolkit.trace import get_tracer

from .callbacks import TrainingCallback


class LoraEMA(TrainingCallback):
    """A float32 shadow copy of every trainable LoRA weight."""

    def __init__(self, network, decay: float):
        self.network = network
        self.decay = decay
        # The parameter objects are kept: the adapter's own list omits them while it is disabled.
        self.parameters = dict(network.named_parameters())
        self.shadow = {name: p.detach().float().clone() for name, p in self.parameters.items()}

    @torch.no_grad()
    def reset(self) -> None:
        """Start over from the adapter's current weights (a resume from a save without EMA weights)."""
        self.shadow = {name: p.detach().float().clone() for name, p in self.parameters.items()}

    def on_optimizer_step(self, trainer, step: int) -> None:
        self.update(step)

    @torch.no_grad()
    def update(self, step: int) -> None:
        for name, parameter in self.parameters.items():
            self.shadow[name].lerp_(parameter.detach().float(), 1.0 - self.decay)
        get_tracer().event("ema_update", step=step, decay=self.decay, tensors=len(self.shadow))

    @torch.no_grad()
    def _swap(self) -> None:
        for name, parameter in self.parameters.items():
            live = parameter.detach().clone()
            parameter.copy_(self.shadow[name].to(parameter.dtype))
            self.shadow[name] = live.float()

    @contextlib.contextmanager
    def _swapped(self) -> Iterator[None]:
        self._swap()
        try:
            yield
        finally:
            self._swap()

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

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore EMA weights saved by `state_dict` (the trained weights stay as they are)."""
        with self._swapped():
            self.network.load_state_dict(state)
