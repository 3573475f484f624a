"""LoRA adapters (peft) on the LTX-2 transformer; `attach_network` also serves LoKr (toolkit/network/lokr.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

ADAPTER_NAME = "default"
ADAPTER_PARAMETER_MARKERS = ("lora_", "lokr_")  # peft's names for LoRA (lora_A/lora_B) and LoKr (lokr_w1/...) weights

# Video and audio self/cross attention, the audio<->video attention and both feed-forwards of every block.
LTX2_LORA_TARGETS = (
    r".*transformer_blocks\.\d+\."
    r"(?:(?:attn1|attn2|audio_attn1|audio_attn2|audio_to_video_attn|video_to_audio_attn)\.(?:to_q|to_k|to_v|to_out\.0)"
    r"|(?:ff|audio_ff)\.net\.(?:0\.proj|2))"
)


@dataclass
class LoraNetwork:
    """The adapter attached to a transformer and what it covers (`kind`: lora or lokr)."""

    transformer: torch.nn.Module
    rank: int
    alpha: float
    target_modules: list[str]
    kind: str = "lora"

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [
            (n, p) for n, p in self.transformer.named_parameters()
            if p.requires_grad and any(marker in n for marker in ADAPTER_PARAMETER_MARKERS)
        ]

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


def resolve_targets(transformer: torch.nn.Module, network_config) -> list[str]:
    """Names of the linear layers the adapter wraps, from the config's filters or LTX-2's defaults."""
    includes = network_config.target_modules
    excludes = network_config.exclude_modules or []
    names = []
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if includes:
            # Whole dotted parts only, as peft matches: "proj_in" is not "audio_proj_in", "ff.net.2" not "audio_ff.net.2".
            if not any(name == suffix or name.endswith("." + suffix) for suffix in includes):
                continue
        elif not re.fullmatch(LTX2_LORA_TARGETS, name):
            continue
        if any(pattern in name for pattern in excludes):
            continue
        names.append(name)
    if not names:
        raise ValueError(
            f"network.target_modules {includes} matched no linear layer of {type(transformer).__name__}; "
            "use suffixes like 'attn1.to_q' or 'ff.net.2'"
        )
    return names


def attach_lora(transformer: torch.nn.Module, network_config, seed: int) -> LoraNetwork:
    """Add a peft LoRA adapter to `transformer`; only its weights train.

    The adapter's random initial weights come from `seed` alone, not from the
    global RNG, whose state depends on what ran before (building the tiny
    model, cache misses): the same seed gives the same LoRA run after run.
    The global RNG is left as it was.
    """
    from peft import LoraConfig

    targets = resolve_targets(transformer, network_config)
    transformer.requires_grad_(False)
    lora_config = LoraConfig(
        r=network_config.linear,
        lora_alpha=network_config.linear_alpha,
        lora_dropout=network_config.dropout,
        target_modules=targets,
        init_lora_weights=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer.add_adapter(lora_config, adapter_name=ADAPTER_NAME)
    network = LoraNetwork(transformer, network_config.linear, network_config.linear_alpha, targets)
    for parameter in network.parameters():
        parameter.data = parameter.data.float()
    return network


def attach_network(transformer: torch.nn.Module, network_config, seed: int) -> LoraNetwork:
    """The adapter `network.type` asks for: LoRA, or LoKr (peft's LoKrConfig)."""
    if network_config.type == "lokr":
        from toolkit.network.lokr import attach_lokr

        return attach_lokr(transformer, network_config, seed)
    return attach_lora(transformer, network_config, seed)
