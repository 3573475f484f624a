"""The `config` metadata of an LTX-2 single file: diffusers configs <-> the JSON Lightricks' loaders read.

A published LTX-2 `.safetensors` carries, in its header's `__metadata__`, a
`config` entry: JSON with a section per component, in the field names of
Lightricks' ltx-core (`LTXModelConfigurator`, `VideoEncoderConfigurator` /
`VideoDecoderConfigurator`, `AudioDecoderConfigurator`, `VocoderConfigurator`,
`Embeddings1DConnectorConfigurator`), which ComfyUI also merges over what it
detects from the tensor names (`config["transformer"]`). ltx-core reads its
`model_version` entry as a plain string.

`from_ltx_config` reads that JSON as diffusers config values, for the fields
the table below covers (the ones versions differ in, and the sizes). What
ltx-core fixes in code rather than config (patch sizes, the vocoder's 128
mel input channels) is not in the table; a reader takes those from the
file's exact `diffusers` entry, a base folder or the class defaults. The inverse (`to_ltx_config`), which
writes that JSON from diffusers configs, belongs to the tests' single-file writer
(tests/ltx2/single_file_writer/config.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


# (ltx-core transformer field, diffusers transformer field): equal values.
_TRANSFORMER_FIELDS = (
    ("num_attention_heads", "num_attention_heads"),
    ("attention_head_dim", "attention_head_dim"),
    ("in_channels", "in_channels"),
    ("out_channels", "out_channels"),
    ("num_layers", "num_layers"),
    ("cross_attention_dim", "cross_attention_dim"),
    ("caption_channels", "caption_channels"),
    ("norm_eps", "norm_eps"),
    ("audio_num_attention_heads", "audio_num_attention_heads"),
    ("audio_attention_head_dim", "audio_attention_head_dim"),
    ("audio_in_channels", "audio_in_channels"),
    ("audio_out_channels", "audio_out_channels"),
    ("audio_cross_attention_dim", "audio_cross_attention_dim"),
    ("positional_embedding_theta", "rope_theta"),
    ("timestep_scale_multiplier", "timestep_scale_multiplier"),
    ("av_ca_timestep_scale_multiplier", "cross_attn_timestep_scale_multiplier"),
    ("rope_type", "rope_type"),
    ("apply_gated_attention", "gated_attn"),
    ("cross_attention_adaln", "cross_attn_mod"),
    ("use_prompt_adaln_single", "use_prompt_adaln_single"),
    ("ff_bias", "ff_bias"),
    ("audio_ff_bias", "audio_ff_bias"),
    ("use_keyframes_abs_pos_embedding", "use_keyframes_abs_pos_embedding"),
)
# ltx-core keeps one gate / modulation flag for both modalities; diffusers has an audio twin of each.
_TRANSFORMER_AUDIO_TWINS = (("gated_attn", "audio_gated_attn"), ("cross_attn_mod", "audio_cross_attn_mod"))
# (ltx-core transformer field, diffusers connectors field): ltx-core reads the connectors' sizes there.
_CONNECTOR_FIELDS = (
    ("connector_num_attention_heads", "video_connector_num_attention_heads"),
    ("connector_attention_head_dim", "video_connector_attention_head_dim"),
    ("connector_num_layers", "video_connector_num_layers"),
    ("connector_num_learnable_registers", "video_connector_num_learnable_registers"),
    ("audio_connector_num_attention_heads", "audio_connector_num_attention_heads"),
    ("audio_connector_attention_head_dim", "audio_connector_attention_head_dim"),
    ("audio_connector_num_layers", "audio_connector_num_layers"),
    ("audio_connector_num_learnable_registers", "audio_connector_num_learnable_registers"),
    ("connector_apply_gated_attention", "video_gated_attn"),
    ("causal_temporal_positioning", "causal_temporal_positioning"),
    ("caption_proj_before_connector", "per_modality_projections"),
)
_DOWNSAMPLE_BLOCKS = {
    "spatial": "compress_space_res",
    "temporal": "compress_time_res",
    "spatiotemporal": "compress_all_res",
}
_UPSAMPLE_BLOCKS = {"spatial": "compress_space", "temporal": "compress_time", "spatiotemporal": "compress_all"}
# (ltx-core vocoder field, diffusers field without the `bwe_` prefix).
_VOCODER_FIELDS = (
    ("resblock_kernel_sizes", "resnet_kernel_sizes"),
    ("upsample_rates", "upsample_factors"),
    ("upsample_kernel_sizes", "upsample_kernel_sizes"),
    ("resblock_dilation_sizes", "resnet_dilations"),
    ("upsample_initial_channel", "hidden_channels"),
    ("use_bias_at_final", "final_bias"),
)
# (path in ltx-core's audio_vae section, diffusers AutoencoderKLLTX2Audio field).
_AUDIO_VAE_FIELDS = (
    ("model.params.ddconfig.ch", "base_channels"),
    ("model.params.ddconfig.out_ch", "output_channels"),
    ("model.params.ddconfig.ch_mult", "ch_mult"),
    ("model.params.ddconfig.num_res_blocks", "num_res_blocks"),
    ("model.params.ddconfig.attn_resolutions", "attn_resolutions"),
    ("model.params.ddconfig.resolution", "resolution"),
    ("model.params.ddconfig.z_channels", "latent_channels"),
    ("model.params.ddconfig.norm_type", "norm_type"),
    ("model.params.ddconfig.causality_axis", "causality_axis"),
    ("model.params.ddconfig.dropout", "dropout"),
    ("model.params.ddconfig.mid_block_add_attention", "mid_block_add_attention"),
    ("model.params.ddconfig.double_z", "double_z"),
    ("model.params.ddconfig.in_channels", "in_channels"),
    ("model.params.ddconfig.mel_bins", "mel_bins"),
    ("model.params.sampling_rate", "sample_rate"),
    ("preprocessing.stft.hop_length", "mel_hop_length"),
    ("preprocessing.stft.causal", "is_causal"),
)


def from_ltx_config(ltx: Mapping[str, Any]) -> dict[str, dict]:
    """{component: diffusers config values} that the ltx-core JSON states (only the fields it covers)."""
    configs: dict[str, dict] = {}
    transformer = ltx.get("transformer") or {}
    if transformer:
        configs["transformer"] = _diffusers_transformer(transformer)
        configs["connectors"] = _diffusers_connectors(transformer)
    if ltx.get("vae"):
        configs["vae"] = _diffusers_vae(ltx["vae"])
    if ltx.get("audio_vae"):
        values = {name: _get(ltx["audio_vae"], path) for path, name in _AUDIO_VAE_FIELDS}
        configs["audio_vae"] = {name: value for name, value in values.items() if value is not None}
        if configs["audio_vae"].get("attn_resolutions") == []:
            configs["audio_vae"]["attn_resolutions"] = None  # diffusers' spelling of "no attention"
    if ltx.get("vocoder"):
        configs["vocoder"] = _diffusers_vocoder(ltx["vocoder"])
    return configs


def _diffusers_transformer(section: Mapping[str, Any]) -> dict:
    config = {name: section[ltx_name] for ltx_name, name in _TRANSFORMER_FIELDS if ltx_name in section}
    for video_flag, audio_flag in _TRANSFORMER_AUDIO_TWINS:
        if video_flag in config:
            config[audio_flag] = config[video_flag]
    if "positional_embedding_max_pos" in section:
        max_positions = section["positional_embedding_max_pos"]
        config["pos_embed_max_pos"], config["base_height"], config["base_width"] = max_positions
    if "audio_positional_embedding_max_pos" in section:
        config["audio_pos_embed_max_pos"] = section["audio_positional_embedding_max_pos"][0]
    if "frequencies_precision" in section:
        config["rope_double_precision"] = section["frequencies_precision"] == "float64"
    if "vae_scale_factors" in section:
        config["vae_scale_factors"] = tuple(section["vae_scale_factors"])
    if "caption_proj_before_connector" in section:
        config["use_prompt_embeddings"] = not section["caption_proj_before_connector"]
        # The 2.3 transformer's perturbed-attention path comes with the same generation (ltx-core has no flag).
        config["perturbed_attn"] = bool(section["caption_proj_before_connector"])
    return config


def _diffusers_connectors(section: Mapping[str, Any]) -> dict:
    config = {name: section[ltx_name] for ltx_name, name in _CONNECTOR_FIELDS if ltx_name in section}
    if "video_gated_attn" in config:
        config["audio_gated_attn"] = config["video_gated_attn"]
    if "connector_positional_embedding_max_pos" in section:
        config["connector_rope_base_seq_len"] = section["connector_positional_embedding_max_pos"][0]
    shared = {
        "caption_channels": "caption_channels",
        "positional_embedding_theta": "rope_theta",
        "rope_type": "rope_type",
    }
    config.update({name: section[ltx_name] for ltx_name, name in shared.items() if ltx_name in section})
    if "frequencies_precision" in section:
        config["rope_double_precision"] = section["frequencies_precision"] == "float64"
    return config


def _diffusers_vae(section: Mapping[str, Any]) -> dict:
    config: dict[str, Any] = {}
    plain = {
        "in_channels": "in_channels",
        "out_channels": "out_channels",
        "latent_channels": "latent_channels",
        "patch_size": "patch_size",
        "causal_decoder": "decoder_causal",
        "timestep_conditioning": "timestep_conditioning",
        "spatial_padding_mode": "decoder_spatial_padding_mode",
        "encoder_spatial_padding_mode": "encoder_spatial_padding_mode",
    }
    config.update({name: section[ltx_name] for ltx_name, name in plain.items() if ltx_name in section})
    if section.get("encoder_blocks"):
        config.update(_diffusers_encoder_blocks(section["encoder_blocks"], section.get("latent_channels", 128)))
        # Each spatial (temporal) downsampler halves height and width (frames); patches divide the pixels first.
        types = [kind for kind, scaled in zip(config["downsample_type"], config["spatio_temporal_scaling"]) if scaled]
        config["spatial_compression_ratio"] = config.get("patch_size", 4) * 2 ** sum(t != "temporal" for t in types)
        config["temporal_compression_ratio"] = 2 ** sum(t != "spatial" for t in types)
    if section.get("decoder_blocks"):
        config.update(_diffusers_decoder_blocks(list(reversed(section["decoder_blocks"]))))
    return config


def _diffusers_encoder_blocks(blocks: list, latent_channels: int) -> dict:
    names = {value: key for key, value in _DOWNSAMPLE_BLOCKS.items()}
    layers, scaling, downsample, channels = [], [], [], []
    current = latent_channels
    for name, params in blocks:
        if name == "res_x":
            layers.append(params["num_layers"])
            scaling.append(False)
            downsample.append("spatiotemporal")
            channels.append(current)
        else:
            current *= params.get("multiplier", 2)
            scaling[-1], downsample[-1], channels[-1] = True, names[name], current
    # The last res_x group is the mid block; it has no entry in the per-block lists.
    blocks_count = len(layers) - 1
    return {
        "layers_per_block": tuple(layers),
        "spatio_temporal_scaling": tuple(scaling[:blocks_count]),
        "downsample_type": tuple(downsample[:blocks_count]),
        "block_out_channels": tuple(channels[:blocks_count]),
    }


def _diffusers_decoder_blocks(blocks: list) -> dict:
    """diffusers' decoder lists from ltx-core's blocks in build order (latent side first)."""
    names = {value: key for key, value in _UPSAMPLE_BLOCKS.items()}
    layers, inject, scaling, residual, factor, upsample = [], [], [], [], [], []
    pending: tuple | None = None
    for name, params in blocks:
        if name != "res_x":
            pending = (names[name], params.get("residual", False), params.get("multiplier", 1))
            continue
        if layers:  # every res_x after the mid block closes one up block
            kind, has_residual, multiplier = pending or ("spatiotemporal", False, 1)
            scaling.append(pending is not None)
            upsample.append(kind)
            residual.append(has_residual)
            factor.append(multiplier)
            pending = None
        layers.append(params["num_layers"])
        inject.append(params.get("inject_noise", False))
    return {
        "decoder_layers_per_block": tuple(reversed(layers)),
        "decoder_inject_noise": tuple(reversed(inject)),
        "decoder_spatio_temporal_scaling": tuple(reversed(scaling)),
        "upsample_residual": tuple(reversed(residual)),
        "upsample_factor": tuple(reversed(factor)),
        "upsample_type": tuple(upsample),
    }


def _diffusers_vocoder(section: Mapping[str, Any]) -> dict:
    if "bwe" not in section:
        config = {name: section[ltx_name] for ltx_name, name in _VOCODER_FIELDS if ltx_name in section}
        if "output_sampling_rate" in section:
            config["output_sampling_rate"] = section["output_sampling_rate"]
        return config
    vocoder, bwe = section.get("vocoder", {}), section["bwe"]
    config = {name: vocoder[ltx_name] for ltx_name, name in _VOCODER_FIELDS if ltx_name in vocoder}
    config.update({"bwe_" + name: bwe[ltx_name] for ltx_name, name in _VOCODER_FIELDS if ltx_name in bwe})
    renamed = {"input_sampling_rate": "input_sampling_rate", "output_sampling_rate": "output_sampling_rate",
               "n_fft": "filter_length", "hop_length": "hop_length", "num_mels": "num_mel_channels"}
    config.update({name: bwe[ltx_name] for ltx_name, name in renamed.items() if ltx_name in bwe})
    if "n_fft" in bwe:
        config["window_length"] = bwe["n_fft"]  # ltx-core's MelSTFT uses the FFT size as its window
    return config


def _get(section: Mapping[str, Any], path: str):
    for part in path.split("."):
        if not isinstance(section, Mapping) or part not in section:
            return None
        section = section[part]
    return section


