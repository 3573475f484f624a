"""The published LTX-2 components of each version, as (class, constructor arguments), for the memory plan.

Only what differs from the diffusers classes' defaults (which are LTX-2.0)
is written here. Sizes these give on the meta device, against the published
ones (DESIGN.md):

- 2.3 transformer: 18.99 B (the gates, cross-attention modulation and prompt
  AdaLN on top of 2.0's 18.88 B; the caption projection moves out);
- 2.3 connectors: 3.17 B (8 gated layers per modality, one projection per
  modality from the 49 Gemma layers);
- 2.3 vocoder with bandwidth extension: 128.5 M;
- 2.3 video VAE: a 4-block decoder (spatiotemporal, spatiotemporal,
  temporal, spatial; 1024/1024/512/256 channels, 5 layers each) gives
  698 M for the decoder where 726 M is published: the exact layout is not
  in diffusers 0.42.1, so a plan of a local folder (which reads the real
  configs and file sizes) is exact and this one is within 4 %.
- 2.5 text encoder: Gemma 4 (`Gemma4UnifiedForConditionalGeneration`) at the
  Gemma 3 12B widths (3840 x 48 layers), since the connectors' input width is
  unchanged; its vision and audio towers are left out (not used for prompts).
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
    "2.5": {**_GATED, "ff_bias": False, "use_keyframes_abs_pos_embedding": True, "use_prompt_adaln_single": False},
}
_CONNECTORS_2_3 = {
    "per_modality_projections": True,
    "video_gated_attn": True,
    "audio_gated_attn": True,
    "video_connector_num_layers": 8,
    "audio_connector_num_layers": 8,
    "video_connector_num_attention_heads": 32,
    "video_connector_attention_head_dim": 128,
    "audio_connector_num_attention_heads": 32,
    "audio_connector_attention_head_dim": 64,
}
CONNECTOR_ARGS = {"2.0": {}, "2.3": _CONNECTORS_2_3, "2.5": _CONNECTORS_2_3}
_VAE_2_3 = {
    "decoder_block_out_channels": (256, 512, 1024, 1024),
    "decoder_layers_per_block": (5, 5, 5, 5, 5),
    "decoder_spatio_temporal_scaling": (True, True, True, True),
    "decoder_inject_noise": (False, False, False, False, False),
    "upsample_type": ("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
    "upsample_residual": (True, True, True, True),
    "upsample_factor": (2, 2, 2, 2),
}
VAE_ARGS = {"2.0": {}, "2.3": _VAE_2_3, "2.5": _VAE_2_3}
VOCODER_CLASS = {"2.0": "LTX2Vocoder", "2.3": "LTX2VocoderWithBWE", "2.5": "LTX2VocoderWithBWE"}


def published_component(name: str, version: str):
    """Component `name` of the published LTX-`version`, built with whatever device context the caller set."""
    import diffusers
    from diffusers.pipelines.ltx2 import connectors, vocoder

    if name == "text_encoder":
        return _text_encoder(version)
    if name == "transformer":
        return diffusers.LTX2VideoTransformer3DModel(**TRANSFORMER_ARGS[version])
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
