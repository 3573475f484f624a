"""LoRA adapters (peft) on a model's transformer; `LoraNetwork` also holds a LoKr adapter (toolkit/network/lokr.py).

`network.type` picks between them in toolkit/network/attach.py.

Which layers a LoRA adapts when `network.target_modules` is not set is the model's answer
(`BaseModel.lora_target_pattern`, toolkit/models/base_model.py), passed in as `default_targets`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from toolkit.trace import get_tracer

ADAPTER_NAME = "default"
ADAPTER_PARAMETER_MARKERS = ("lora_", "lokr_")  # peft's names for LoRA (lora_A/lora_B) and LoKr (lokr_w1/...) weights

@dataclass
class LoraNetwork:
    """The adapter attached to a transformer and what it covers (`kind`: lora or lokr)."""

    transformer: torch.nn.Module
    rank: int
    alpha: float
    target_modules: list[str]
    kind: str = "lora"
    _named: list[tuple[str, torch.nn.Parameter]] | None = field(default=None, init=False, repr=False, compare=False)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The adapter's weights under peft's names, found once: a step asks for them several times (clipping,
        metrics) and walking every module of the transformer each time cost more than the metrics themselves.
        Loading weights, the EMA and casting (`.data =`) keep the same Parameter objects, so the list stays
        true; under FSDP it keeps the names from before wrapping."""
        if self._named is None:
            self._named = [
                (n, p) for n, p in self.transformer.named_parameters()
                if p.requires_grad and any(marker in n for marker in ADAPTER_PARAMETER_MARKERS)
            ]
        return list(self._named)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter weights under peft's names (``transformer_blocks.0.attn1.to_q.lora_A.weight``)."""
        from peft.utils import get_peft_model_state_dict

        return get_peft_model_state_dict(self.transformer, adapter_name=ADAPTER_NAME)

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.transformer, state_dict, adapter_name=ADAPTER_NAME)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise KeyError(f"LoRA weights do not match this transformer: unexpected keys {unexpected[:5]}")

    def set_enabled(self, enabled: bool) -> None:
        """Switch the adapter on or off (off: the base model's prediction)."""
        if enabled:
            self.transformer.enable_adapters()
        else:
            self.transformer.disable_adapters()


def resolve_targets(transformer: torch.nn.Module, network_config, default_targets: str | None = None) -> list[str]:
    """Names of the linear layers the adapter wraps: the config's filters, else those whose whole name
    matches the model's `default_targets` pattern."""
    return select_targets(transformer.named_modules(), network_config, default_targets, type(transformer).__name__)


def select_targets(
    named_modules: Iterable[tuple[str, torch.nn.Module]], network_config, default_targets: str | None, owner: str
) -> list[str]:
    """`resolve_targets` over (name, module) pairs of the model class `owner` (e.g. a memory plan's meta layers)."""
    includes = network_config.target_modules
    excludes = network_config.exclude_modules or []
    names = []
    for name, module in named_modules:
        if not isinstance(module, torch.nn.Linear):
            continue
        if includes:
            if not _matches_suffix(name, includes):
                continue
        elif default_targets is None:
            raise ValueError(
                f"network.target_modules is not set and no default LoRA targets were given for {owner}; "
                "name the layers in network.target_modules"
            )
        elif not re.fullmatch(default_targets, name):
            continue
        if _matches_suffix(name, excludes):
            continue
        names.append(name)
    if not names:
        raise ValueError(
            f"network.target_modules {includes} matched no linear layer of {owner}; "
            "use suffixes like 'attn1.to_q' or 'ff.net.2'"
        )
    return names


def _matches_suffix(name: str, suffixes: list[str]) -> bool:
    """Whole dotted parts only, as peft matches: "attn1.to_q" is not "audio_attn1.to_q", "ff.net.2" not "audio_ff.net.2"."""
    return any(name == suffix or name.endswith("." + suffix) for suffix in suffixes)


def attach_lora(
    transformer: torch.nn.Module, network_config, seed: int, default_targets: str | None = None
) -> LoraNetwork:
    """Add a peft LoRA adapter to `transformer`; only its weights train.

    The adapter's random initial weights come from `seed` alone, not from the
    global RNG, whose state depends on what ran before (building the tiny
    model, cache misses): the same seed gives the same LoRA run after run.
    The global RNG is left as it was.
    """
    targets = resolve_targets(transformer, network_config, default_targets)
    transformer.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer.add_adapter(lora_config(network_config, targets), adapter_name=ADAPTER_NAME)
    network = LoraNetwork(transformer, network_config.linear, network_config.linear_alpha, targets)
    for parameter in network.parameters():
        parameter.data = parameter.data.float()
    get_tracer().event(
        "lora_targets",
        targeted=len(targets),
        targeted_kinds=linear_kinds(targets),
        left_out_kinds=linear_kinds(left_out_linears(transformer, targets)),
    )
    return network


def lora_config(network_config, targets: list[str]):
    """peft's LoraConfig of `network_config` on the layers named `targets`."""
    from peft import LoraConfig

    return LoraConfig(
        r=network_config.linear,
        lora_alpha=network_config.linear_alpha,
        lora_dropout=network_config.dropout,
        target_modules=targets,
        init_lora_weights=True,
    )


def left_out_linears(transformer: torch.nn.Module, targets: list[str]) -> list[str]:
    """The transformer's linear layers the adapter does not wrap (its own lora_ layers aside)."""
    chosen = set(targets)
    return [
        name
        for name, module in transformer.named_modules()
        if isinstance(module, torch.nn.Linear) and name not in chosen and "lora_" not in name and "base_layer" not in name
    ]


def linear_kinds(names: list[str]) -> dict[str, int]:
    """Layer names grouped with block numbers as '*': {'transformer_blocks.*.attn1.to_gate_logits': 48, ...}."""
    kinds: dict[str, int] = {}
    for name in names:
        kind = re.sub(r"\.\d+\.", ".*.", name)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds

