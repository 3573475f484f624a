"""FSDP: the transformer sharded over the processes, for a bf16 transformer that does not fit one GPU.

Under `accelerate launch --config_file config/accelerate/fsdp.yaml` each process holds 1/N of the
transformer's weights and gathers one block at a time for its forward and backward (torch FSDP,
`use_orig_params=True`: the frozen base weights and the trainable LoRA weights stay the module's own
parameters, so the LoRA network, the optimizer and `adapter_strength` see them as before). FSDP
averages the LoRA gradients over the processes in its backward (no manual all-reduce), clips them with
its own `clip_grad_norm_` (the norm over every shard), and the LoRA is gathered on every process
before the main one writes it.

Wrap units: each of the transformer's repeated blocks (the classes in its `nn.ModuleList`s), and each
trainable adapter `nn.Linear` on its own: FSDP flattens a unit's parameters into one tensor of one
dtype, and the LoRA weights train in float32 next to bf16 base weights.
"""

from __future__ import annotations

import torch

from toolkit.errors import ConfigError


def check_fsdp_settings(model_config) -> None:
    """FSDP shards plain tensors only: refuse what would put anything else in the transformer."""
    if getattr(model_config, "quantize", False):
        raise ConfigError(
            "model.quantize is on under an FSDP launch: optimum-quanto's quantized weights cannot be sharded by "
            "FSDP. Set model.quantize: false (each GPU then holds 1/N of the bf16 transformer), or launch "
            "data-parallel with config/accelerate/multi_gpu.yaml to keep the quantized transformer whole on each GPU."
        )
    if getattr(model_config, "layer_offloading", False):
        raise ConfigError(
            "model.layer_offloading is on under an FSDP launch: FSDP moves the shards itself and the offloader's "
            "hooks would fight it. Set model.layer_offloading: false, or launch data-parallel with "
            "config/accelerate/multi_gpu.yaml."
        )
    if getattr(model_config, "compile", False):
        raise ConfigError(
            "model.compile is on under an FSDP launch: sd_trainer does not compile a sharded transformer. "
            "Set model.compile: false."
        )


def _block_classes(transformer: torch.nn.Module) -> set[type]:
    """The classes of the transformer's repeated blocks (the members of its nn.ModuleLists)."""
    classes = {
        type(child)
        for module in transformer.modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1
        for child in module
    }
    return classes


def _is_trainable_linear(module: torch.nn.Module) -> bool:
    parameters = list(module.parameters(recurse=False))
    return isinstance(module, torch.nn.Linear) and bool(parameters) and all(p.requires_grad for p in parameters)


class ShardedTransformer:
    """The FSDP-wrapped transformer of one run, and the LoRA's parameters by their saved names."""

    def __init__(self, transformer: torch.nn.Module, network, accelerator) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp import ShardingStrategy

        blocks = _block_classes(transformer)
        # Saved names -> the parameter objects, found before wrapping (peft's state dict shares their storage).
        by_storage = {p.data_ptr(): p for p in network.parameters()}
        self.lora = {name: by_storage[t.data_ptr()] for name, t in network.state_dict().items()}
        plugin = getattr(accelerator.state, "fsdp_plugin", None)
        strategy = getattr(plugin, "sharding_strategy", None) or ShardingStrategy.FULL_SHARD
        self.root = FSDP(
            transformer,
            auto_wrap_policy=lambda module, recurse, nonwrapped_numel: recurse
            or isinstance(module, tuple(blocks))
            or _is_trainable_linear(module),
            sharding_strategy=strategy,
            use_orig_params=True,
            # cuda:LOCAL_RANK, or the CPU (gloo; FSDP wants "cpu", not accelerate's "cpu:0")
            device_id=accelerator.device if accelerator.device.type != "cpu" else torch.device("cpu"),
        )
        self.block_classes = sorted(cls.__name__ for cls in blocks)

    def clip_gradients(self, max_norm: float) -> float:
        """The gradient norm over all shards (clipped to `max_norm` when it is > 0); every process calls it."""
        return float(self.root.clip_grad_norm_(max_norm if max_norm > 0 else float("inf")))

    def lora_state(self) -> dict[str, torch.Tensor]:
        """The whole LoRA under its saved names, gathered on every process (a collective: all must call it)."""
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(self.root, writeback=False):
            return {name: parameter.detach().clone() for name, parameter in self.lora.items()}

    def load_lora_state(self, state: dict[str, torch.Tensor]) -> None:
        """Write a whole LoRA (resume) into the shards of every process (a collective: all must call it)."""
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(self.root, writeback=True), torch.no_grad():
            for name, parameter in self.lora.items():
                parameter.copy_(state[name].to(parameter.device, parameter.dtype))

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer's whole state (not this process's shard of it), on every process (a collective)."""
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP.optim_state_dict(self.root, optimizer)

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Give each process its shard of a whole optimizer state saved by `optimizer_state` (a collective)."""
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        optimizer.load_state_dict(FSDP.optim_state_dict_to_load(self.root, optimizer, state))


def check_fsdp_run(config) -> None:
    """What an FSDP launch refuses in a run's config (before any model loads)."""
    check_fsdp_settings(config.model)
    if config.train.ema_config.use_ema:
        raise ConfigError(
            "train.ema_config.use_ema is on under an FSDP launch: the EMA would average this process's shard of "
            "the LoRA only. Set train.ema_config.use_ema: false, or launch data-parallel (config/accelerate/multi_gpu.yaml)."
        )
    if not config.train.disable_sampling and config.sample.prompts:
        raise ConfigError(
            "train.disable_sampling is false under an FSDP launch: sampling during training is not done with a "
            "sharded transformer. Set train.disable_sampling: true and sample the saved LoRA afterwards with the "
            "generate process (like config/examples/generate_ltx2_tiny.yaml), or launch data-parallel (config/accelerate/multi_gpu.yaml)."
        )
