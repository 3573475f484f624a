"""LTX-2's modules kept at full precision when its transformer and text encoder are quantized.

LTX2Model hands these to the toolkit's quantizer (toolkit/quantize.py) and to the memory plan through
the model interface (`quantization_excludes`).
"""

from __future__ import annotations

LTX2_TRANSFORMER_EXCLUDE: tuple[str, ...] = (
    "*norm*",
    "*scale_shift*",
    "proj_in",
    "proj_out",
    "audio_proj_in",
    "audio_proj_out",
    "time_embed",
    "audio_time_embed",
    "caption_projection",
    "audio_caption_projection",
    "av_cross_attn_*",
)
"""LTX2VideoTransformer3DModel modules kept at full precision (fnmatch patterns on module names).

``av_cross_attn_*`` covers the audio-video cross-attention modulation
(``av_cross_attn_{video,audio}_scale_shift`` and the a2v / v2a gates). The
``scale_shift_table`` tensors are parameters, not Linear layers: quantization
never touches them.
"""

GEMMA3_TEXT_ENCODER_EXCLUDE: tuple[str, ...] = ("lm_head", "*vision_tower*", "*multi_modal_projector*")
"""Gemma 3 text encoder modules kept at full precision: LTX-2 reads hidden states only, so the
(tied) ``lm_head`` and the vision tower never run; quantizing them saves nothing worth the risk."""

DEFAULT_EXCLUDE: dict[str, tuple[str, ...]] = {
    "transformer": LTX2_TRANSFORMER_EXCLUDE,
    "text_encoder": GEMMA3_TEXT_ENCODER_EXCLUDE,
}
