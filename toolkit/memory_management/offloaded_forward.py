"""Run a layer whose weights live in host memory, on the compute device, with correct gradients.

The forward copies the layer's weights to the device into temporaries, runs the
layer's own forward with them and lets them go. Autograd must not keep those
device copies until backward (that would undo the saving), so the layer runs
inside a custom autograd Function that saves nothing of the weights: backward
copies them to the device again, recomputes the layer and differentiates it.
Linear and Conv layers are affine in their input, so when no weight needs a
gradient (frozen base weights under a LoRA) the input is not saved either and
backward recomputes on zeros of the same shape: offloaded layers hold no device
memory between forward and backward.

On CUDA a side stream copies the next layer's weights (from pinned host memory)
while the current one computes; forward prefetches the next layer in module
order, backward the previous one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from toolkit.memory_management.errors import OffloadError
from toolkit.memory_management.tensors import leaf_tensors


class WeightMover:
    """Copies managed layers' weights from host memory to the compute device, prefetching on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.layers: list[ManagedLayer] = []
        self._copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        # At most one prefetched layer waits here, so prefetching costs one layer of device memory.
        self._prefetched: tuple[int, dict[str, torch.Tensor], Any] | None = None

    def fetch(self, layer: ManagedLayer, direction: int) -> dict[str, torch.Tensor]:
        """Device copies of `layer`'s weights; then starts copying the next layer in `direction` (+1/-1)."""
        if self._copy_stream is None:
            return {name: tensor.to(self.device) for name, tensor in layer.host_tensors().items()}
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == layer.index:
            _, device_tensors, ready = prefetched
        else:
            device_tensors, ready = self._copy(layer)
        compute_stream = torch.cuda.current_stream(self.device)
        compute_stream.wait_event(ready)
        for tensor in device_tensors.values():
            for leaf in leaf_tensors(tensor):
                # Memory allocated on the copy stream must not be reused before the compute stream is done.
                leaf.record_stream(compute_stream)
        following = layer.index + direction
        if 0 <= following < len(self.layers):
            self._prefetched = (following, *self._copy(self.layers[following]))
        return device_tensors

    def _copy(self, layer: ManagedLayer) -> tuple[dict[str, torch.Tensor], Any]:
        with torch.cuda.stream(self._copy_stream):
            device_tensors = {
                name: tensor.to(self.device, non_blocking=True) for name, tensor in layer.host_tensors().items()
            }
            ready = torch.cuda.Event()
            ready.record(self._copy_stream)
        return device_tensors, ready


class ManagedLayer:
    """One offloaded layer: its host weights, its original forward and its place in module order.

    The layer must be affine in its input (Linear, Conv): backward relies on it.
    """

    def __init__(self, name: str, module: nn.Module, index: int, mover: WeightMover) -> None:
        self.name = name
        self.module = module
        self.index = index
        self.mover = mover
        self.parameter_names = tuple(key for key, value in module._parameters.items() if value is not None)
        self._instance_forward = module.__dict__.get("forward")
        self._inner_forward: Callable[..., Any] = module.forward

    def host_tensors(self) -> dict[str, torch.Tensor]:
        return {name: self.module._parameters[name] for name in self.parameter_names}

    def install(self) -> None:
        """Route the module's forward through the offloaded call."""
        self.module.forward = self.forward

    def uninstall(self) -> None:
        """Give the module back the forward it had before `install`."""
        if self._instance_forward is None:
            del self.module.forward
        else:
            self.module.forward = self._instance_forward

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not args or not isinstance(args[0], torch.Tensor):
            raise OffloadError(
                f"Offloaded layer {self.name} ({type(self.module).__name__}) was called without a tensor as its "
                "first positional argument; layer offloading needs the input first. Add this module to "
                "ignore_modules (layer offloading then keeps it on the device)."
            )
        call = _LayerCall(self, args[1:], kwargs)
        return _OffloadedCall.apply(call, args[0], *self.host_tensors().values())

    def run_with(self, device_tensors: dict[str, torch.Tensor], input: torch.Tensor, call: _LayerCall) -> Any:
        """The module's own forward, with `device_tensors` standing in for its parameters."""
        parameters = self.module._parameters
        originals = {name: parameters[name] for name in device_tensors}
        parameters.update(device_tensors)
        try:
            return self._inner_forward(input, *call.args, **call.kwargs)
        finally:
            parameters.update(originals)


class _LayerCall:
    """The non-tensor part of one call: which layer and its extra arguments."""

    def __init__(self, layer: ManagedLayer, args: tuple, kwargs: dict) -> None:
        self.layer = layer
        self.args = args
        self.kwargs = kwargs


class _OffloadedCall(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, call: _LayerCall, input: torch.Tensor, *host_tensors: torch.Tensor) -> torch.Tensor:
        layer = call.layer
        device_tensors = layer.mover.fetch(layer, direction=+1)
        output = layer.run_with(device_tensors, input, call)
        ctx.call = call
        ctx.autocast = _autocast_state(input.device.type)
        ctx.input_spec = (input.shape, input.dtype, input.device)
        if any(ctx.needs_input_grad[2:]):
            ctx.save_for_backward(input)
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple:
        call: _LayerCall = ctx.call
        layer = call.layer
        input_needs_grad = ctx.needs_input_grad[1]
        weights_need_grad = ctx.needs_input_grad[2:]
        saved = ctx.saved_tensors
        if saved:
            input = saved[0]
        else:
            # Managed layers are affine (Linear, Conv): with frozen weights the input gradient
            # does not depend on the input's values.
            shape, dtype, device = ctx.input_spec
            input = torch.zeros(shape, dtype=dtype, device=device)
        device_tensors = layer.mover.fetch(layer, direction=-1)
        with torch.enable_grad(), torch.autocast(**ctx.autocast):
            input_leaf = input.detach().requires_grad_(input_needs_grad)
            weight_leaves = {
                name: tensor.detach().requires_grad_(needs)
                for (name, tensor), needs in zip(device_tensors.items(), weights_need_grad)
            }
            output = layer.run_with(weight_leaves, input_leaf, call)
            wanted = ([input_leaf] if input_needs_grad else []) + [
                leaf for leaf, needs in zip(weight_leaves.values(), weights_need_grad) if needs
            ]
            grads = list(torch.autograd.grad(output, wanted, grad_output, allow_unused=True)) if wanted else []
        grad_input = grads.pop(0) if input_needs_grad else None
        host = layer.host_tensors()
        grad_weights = []
        for name, needs in zip(host, weights_need_grad):
            grad = grads.pop(0) if needs else None
            grad_weights.append(None if grad is None else grad.to(host[name].device))
        return (None, grad_input, *grad_weights)


def _autocast_state(device_type: str) -> dict[str, Any]:
    return {
        "device_type": device_type,
        "enabled": torch.is_autocast_enabled(device_type),
        "dtype": torch.get_autocast_dtype(device_type),
    }
