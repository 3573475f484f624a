"""Which layers of the LTX-2 transformer a LoRA adapts by default, and how its LoRA files name them.

LTX2Model hands both to the toolkit through the model interface
(`lora_target_pattern`, `lora_file_keys`); toolkit/network never names an LTX-2 layer itself.
"""

from __future__ import annotations

import torch

from toolkit.models.lora_keys import LoraFileKeys

from .single_file.keys import original_transformer_key

# Video and audio self/cross attention, the audio<->video attention and both feed-forwards of every block,
# on every LTX-2 version. Left out by default on 2.3/2.5: the per-head attention gates (`to_gate_logits`, a
# sigmoid over a few logits per head: a LoRA there is a known source of NaN LoRAs in another trainer) and the
# prompt modulation (`prompt_adaln`, `audio_prompt_adaln`: timestep MLPs, not attention). Both can still be
# asked for by name in `network.target_modules`.
LTX2_LORA_TARGETS = (
    r".*transformer_blocks\.\d+\."
    r"(?:(?:attn1|attn2|audio_attn1|audio_attn2|audio_to_video_attn|video_to_audio_attn)\.(?:to_q|to_k|to_v|to_out\.0)"
    r"|(?:ff|audio_ff)\.net\.(?:0\.proj|2))"
)


def to_original_name(diffusers_name: str) -> str:
    """A transformer module/parameter name under its original LTX-2 name (shared with single-file export)."""
    return original_transformer_key(diffusers_name)


def original_to_diffusers(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An original-format LTX-2 LoRA (``diffusion_model.`` keys) under diffusers names (``transformer.``),
    by diffusers' own converter (the one `LTX2Pipeline.load_lora_weights` uses)."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_ltx2_lora_to_diffusers

    return _convert_non_diffusers_ltx2_lora_to_diffusers(tensors)


LTX2_LORA_FILE_KEYS = LoraFileKeys(to_original=to_original_name, to_diffusers=original_to_diffusers)
"""The key mapping `save.format: comfy` files use for LTX-2."""
