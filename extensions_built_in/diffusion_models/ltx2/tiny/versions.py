"""What changes in the tiny LTX-2 between versions 2.0, 2.3 and 2.5.

Each version is the published architecture's set of flags at the tiny
sizes of `tiny-ltx2` (see `model.py`); only the parts a version changes
are built here:

- 2.3: gated attention (`to_gate_logits`), cross-attention modulation,
  perturbed attention, the caption projection moved into the connectors
  (`use_prompt_embeddings=False`, `per_modality_projections`, gated
  connector layers), the vocoder with bandwidth extension
  (`LTX2VocoderWithBWE`, 16 -> 48 kHz) and a video-VAE decoder with four
  up-blocks that mirror the encoder's four down-blocks.
- 2.5: 2.3 (its prompt AdaLN included) plus `ff_bias=False`, the keyframe
  position embedding and a Gemma 4 text encoder
  (`Gemma4UnifiedForConditionalGeneration`).
"""

from __future__ import annotations

from extensions_built_in.diffusion_models.ltx2.published_versions import TRANSFORMER_ARGS

VERSIONS = ("2.0", "2.3", "2.5")

# Transformer flags per version (passed on top of the tiny sizes): the published versions' own flags.
TRANSFORMER_FLAGS = TRANSFORMER_ARGS


def check_version(version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"tiny LTX-2 version {version!r}: expected one of {', '.join(VERSIONS)}")
    return version


def connector_flags(version: str, video_dim: int, audio_dim: int) -> dict:
    """2.3+: one projection per modality straight to the transformer's widths, connectors at those widths
    (heads of 8 and 4 channels, as the transformer's), gated connector layers."""
    if version == "2.0":
        return {}
    return {
        "video_connector_num_attention_heads": video_dim // 8,
        "video_connector_attention_head_dim": 8,
        "audio_connector_num_attention_heads": audio_dim // 4,
        "audio_connector_attention_head_dim": 4,
        "per_modality_projections": True,
        "video_hidden_dim": video_dim,
        "audio_hidden_dim": audio_dim,
        "video_gated_attn": True,
        "audio_gated_attn": True,
    }


def video_vae_layout(version: str) -> dict:
    """The decoder's blocks: 3 spatiotemporal up-blocks (2.0) or 4 that mirror the encoder (2.3+).

    Both keep 8x spatial and 8x temporal compression, so a clip still has 8k+1 frames.
    """
    if version == "2.0":
        return {
            "decoder_block_out_channels": (8, 8, 8),
            "decoder_layers_per_block": (1, 1, 1, 1),
            "decoder_spatio_temporal_scaling": (True, True, True),
            "decoder_inject_noise": (False, False, False, False),
            "upsample_residual": (False, False, False),
            "upsample_factor": (1, 1, 1),
        }
    return {
        "decoder_block_out_channels": (8, 8, 8, 8),
        "decoder_layers_per_block": (1, 1, 1, 1, 1),
        "decoder_spatio_temporal_scaling": (True, True, True, True),
        "decoder_inject_noise": (False, False, False, False, False),
        "upsample_type": ("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
        "upsample_residual": (False, False, False, False),
        "upsample_factor": (1, 1, 1, 1),
    }


def build_vocoder(version: str, mel_channels: int):
    """LTX2Vocoder at 16 kHz (2.0), or LTX2VocoderWithBWE: the same vocoder, then a bandwidth extender to 48 kHz."""
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    shared = {
        "in_channels": mel_channels,
        "hidden_channels": 32,
        "out_channels": 2,
        "upsample_kernel_sizes": [8, 8, 20],
        "upsample_factors": [4, 4, 10],
        "resnet_kernel_sizes": [3],
        "resnet_dilations": [[1, 3]],
    }
    if version == "2.0":
        return LTX2Vocoder(**shared, leaky_relu_negative_slope=0.1, output_sampling_rate=16000)
    bwe_mel_bins = 16
    return LTX2VocoderWithBWE(
        **shared,
        antialias_kernel_size=6,
        bwe_in_channels=2 * bwe_mel_bins,
        bwe_hidden_channels=16,
        bwe_out_channels=2,
        # One 80-sample hop at 16 kHz is 240 samples at 48 kHz.
        bwe_upsample_kernel_sizes=[8, 12, 20],
        bwe_upsample_factors=[4, 6, 10],
        bwe_resnet_kernel_sizes=[3],
        bwe_resnet_dilations=[[1, 3]],
        bwe_antialias_kernel_size=6,
        filter_length=128,
        hop_length=80,
        window_length=128,
        num_mel_channels=bwe_mel_bins,
        input_sampling_rate=16000,
        output_sampling_rate=48000,
    )


def build_gemma4_text_encoder(vocab_size: int, hidden: int, layers: int):
    """Gemma 4 (the 2.5 text encoder class) at the tiny text encoder's sizes, text tower only."""
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

    config = Gemma4UnifiedConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "max_position_embeddings": 256,
            "sliding_window": 128,
            "layer_types": ["sliding_attention"] * (layers - 1) + ["full_attention"],
            "pad_token_id": 0,
            "eos_token_id": 1,
            "bos_token_id": 2,
        },
        vision_config=None,
        audio_config=None,
        image_token_id=vocab_size - 1,
        boi_token_id=vocab_size - 2,
        eoi_token_id=vocab_size - 3,
        video_token_id=vocab_size - 4,
        boa_token_id=vocab_size - 5,
        eoa_token_index=vocab_size - 6,
        audio_token_id=vocab_size - 7,
    )
    return Gemma4UnifiedForConditionalGeneration(config)
