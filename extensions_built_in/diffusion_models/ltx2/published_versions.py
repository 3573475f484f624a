"""The published LTX-2 components of each version, as (class, constructor arguments), for the memory plan.

The arguments are diffusers' own: the `get_ltx2_*_config(version)` configs of its converter,
`scripts/convert_ltx2_to_diffusers.py` (versions 2.0, 2.3, 2.5; later diffusers keep them in
`loaders/conversion/configs/ltx2.py`), written here as what differs from the defaults of the
diffusers 0.42.1 classes (which are LTX-2.0's). Sizes they give on the meta device
(tests/memory/test_memory_plan_published.py):

- 2.3 transformer: 18.99 B (gates, cross-attention modulation and the prompt AdaLN on top of
  2.0's 18.88 B; the caption projection moves out); 2.5: 18.99 B too (the video feed-forwards
  lose their biases, the keyframe embedding comes in, and the prompt AdaLN stays:
  `use_prompt_adaln_single` keeps its default, True, in the converter's 2.5 config);
- 2.3 connectors: 3.17 B (8 gated layers per modality, one projection with bias per modality
  from the 49 Gemma layers);
- 2.3 video VAE: 726.11 M (318.94 M encoder, 407.17 M decoder: 4 down-blocks of 256/512/1024/1024
  channels, a 4-block decoder of 256/512/512/1024 without residual upsamplers);
- 2.3 vocoder with bandwidth extension: 128.5 M (the class defaults are the converter's 2.3 config);
- 2.5 text encoder: Gemma 4 (`Gemma4UnifiedForConditionalGeneration`) at the Gemma 3 12B widths
  (3840 x 48 layers), since the converter derives the connectors' input from the Gemma 4 config and
  the 2.5 connectors match 2.3's; its vision and audio towers are left out (not used for prompts).
"""

from __future__ import annotations

GEMMA_12B_TEXT = {
    "hidden_size": 3840,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "intermediate_size": 15360,
    "vocab_size": 262208,
}
GEMMA3_12B_VISION = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 896,
    "patch_size": 14,
    "vision_use_head": False,
}

_GATED = {
    "gated_attn": True,
    "audio_gated_attn": True,
    "cross_attn_mod": True,
    "audio_cross_attn_mod": True,
    "perturbed_attn": True,
    "use_prompt_embeddings": False,
}
TRANSFORMER_ARGS = {
    "2.0": {},
    "2.3": dict(_GATED),
    "2.5": {**_GATED, "ff_bias": False, "use_keyframes_abs_pos_embedding": True},
}
"""Each version's transformer flags (the tiny builder takes them too, at its own sizes)."""
_ROPE = {"rope_type": "split"}  # every version; no weights
_CONNECTORS_2_3 = {
    **_ROPE,
    "per_modality_projections": True,
    "proj_bias": True,
    "video_gated_attn": True,
    "audio_gated_attn": True,
    "video_connector_num_layers": 8,
    "audio_connector_num_layers": 8,
    "video_connector_num_attention_heads": 32,
    "video_connector_attention_head_dim": 128,
    "audio_connector_num_attention_heads": 32,
    "audio_connector_attention_head_dim": 64,
}
CONNECTOR_ARGS = {"2.0": dict(_ROPE), "2.3": _CONNECTORS_2_3, "2.5": _CONNECTORS_2_3}
_VAE_2_0 = {"decoder_causal": False, "spatial_compression_ratio": 32, "temporal_compression_ratio": 8}
_VAE_2_3 = {
    **_VAE_2_0,
    "block_out_channels": (256, 512, 1024, 1024),
    "layers_per_block": (4, 6, 4, 2, 2),
    "decoder_block_out_channels": (256, 512, 512, 1024),
    "decoder_layers_per_block": (4, 6, 4, 2, 2),
    "decoder_spatio_temporal_scaling": (True, True, True, True),
    "decoder_inject_noise": (False, False, False, False, False),
    "upsample_type": ("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
    "upsample_residual": (False, False, False, False),
    "upsample_factor": (2, 2, 1, 2),
    "decoder_spatial_padding_mode": "zeros",
}
VAE_ARGS = {"2.0": _VAE_2_0, "2.3": _VAE_2_3, "2.5": _VAE_2_3}
VOCODER_CLASS = {"2.0": "LTX2Vocoder", "2.3": "LTX2VocoderWithBWE", "2.5": "LTX2VocoderWithBWE"}


def published_component(name: str, version: str):
    """Component `name` of the published LTX-`version`, built with whatever device context the caller set."""
    import diffusers
    from diffusers.pipelines.ltx2 import connectors, vocoder

    if name == "text_encoder":
        return _text_encoder(version)
    if name == "transformer":
        return diffusers.LTX2VideoTransformer3DModel(**TRANSFORMER_ARGS[version], **_ROPE)
    if name == "connectors":
        return connectors.LTX2TextConnectors(**CONNECTOR_ARGS[version])
    if name == "vae":
        return diffusers.AutoencoderKLLTX2Video(**VAE_ARGS[version])
    if name == "audio_vae":
        return diffusers.AutoencoderKLLTX2Audio()
    if name == "vocoder":
        return getattr(vocoder, VOCODER_CLASS[version])()
    raise KeyError(name)


def _text_encoder(version: str):
    if version == "2.5":
        from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

        config = Gemma4UnifiedConfig(text_config=dict(GEMMA_12B_TEXT), vision_config=None, audio_config=None)
        return Gemma4UnifiedForConditionalGeneration(config)
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(text_config=GEMMA_12B_TEXT, vision_config=GEMMA3_12B_VISION, mm_tokens_per_image=256)
    return Gemma3ForConditionalGeneration(config)
