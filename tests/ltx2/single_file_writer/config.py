"""The `config` header entry of a written LTX-2 single file: diffusers configs -> the JSON Lightricks' ltx-core
and ComfyUI read. The writing half of extensions_built_in/diffusion_models/ltx2/single_file/config.py, whose
tables it shares and whose `from_ltx_config` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extensions_built_in.diffusion_models.ltx2.single_file.config import (
    _AUDIO_VAE_FIELDS,
    _CONNECTOR_FIELDS,
    _DOWNSAMPLE_BLOCKS,
    _TRANSFORMER_FIELDS,
    _UPSAMPLE_BLOCKS,
    _VOCODER_FIELDS,
)
from toolkit.errors import CheckpointError

# ltx-core's transformer configurator checks these values (check_config_value); written as it expects them.
_TRANSFORMER_CONSTANTS = {
    "dropout": 0.0,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
    "use_embeddings_connector": True,
}
# 2.3+ (caption projection in the connectors): ltx-core picks its text feature extractor by these four entries
# and refuses a file that has only some of them; a 2.0 file has none (its projection is in the transformer).
_CAPTION_IN_CONNECTORS = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}


def to_ltx_config(configs: Mapping[str, Mapping[str, Any]]) -> dict:
    """{section: fields} as ltx-core reads them, from {component: diffusers config} (the components present)."""
    ltx: dict[str, dict] = {}
    if "transformer" in configs:
        ltx["transformer"] = _ltx_transformer(configs["transformer"], configs.get("connectors"))
    if "vae" in configs:
        ltx["vae"] = _ltx_vae(configs["vae"])
    if "audio_vae" in configs:
        ltx["audio_vae"] = _ltx_audio_vae(configs["audio_vae"])
    if "vocoder" in configs:
        ltx["vocoder"] = _ltx_vocoder(configs["vocoder"])
    return ltx


def _ltx_transformer(config: Mapping[str, Any], connectors: Mapping[str, Any] | None) -> dict:
    section = dict(_TRANSFORMER_CONSTANTS)
    section.update({ltx_name: config[name] for ltx_name, name in _TRANSFORMER_FIELDS if name in config})
    section["positional_embedding_max_pos"] = [config["pos_embed_max_pos"], config["base_height"], config["base_width"]]
    section["audio_positional_embedding_max_pos"] = [config["audio_pos_embed_max_pos"]]
    section["frequencies_precision"] = "float64" if config.get("rope_double_precision") else "float32"
    section["vae_scale_factors"] = list(config["vae_scale_factors"])  # ComfyUI's LTXV model takes it too
    caption_in_connectors = not config.get("use_prompt_embeddings", True)
    if connectors:
        section.update({ltx_name: connectors[name] for ltx_name, name in _CONNECTOR_FIELDS if name in connectors})
        section["connector_positional_embedding_max_pos"] = [connectors["connector_rope_base_seq_len"]]
        caption_in_connectors = bool(section.pop("caption_proj_before_connector", caption_in_connectors))
    if caption_in_connectors:
        section.update(_CAPTION_IN_CONNECTORS)
    return section


def _ltx_vae(config: Mapping[str, Any]) -> dict:
    """ltx-core's CausalVideoAutoencoder section; the block lists follow the original key numbering."""
    layers = list(config["layers_per_block"])
    scaling = _per_block(config["spatio_temporal_scaling"], len(layers) - 1)
    encoder_blocks: list = []
    channels = config["latent_channels"]
    for index, num_layers in enumerate(layers[:-1]):
        encoder_blocks.append(["res_x", {"num_layers": num_layers}])
        if scaling[index]:
            multiplier = config["block_out_channels"][index] // channels
            encoder_blocks.append([_DOWNSAMPLE_BLOCKS[config["downsample_type"][index]], {"multiplier": multiplier}])
        channels = config["block_out_channels"][index]
    encoder_blocks.append(["res_x", {"num_layers": layers[-1]}])

    # Built from the latent side: diffusers stores its per-block lists in the other order.
    up_blocks = len(config["decoder_block_out_channels"])
    decoder_layers = list(reversed(config["decoder_layers_per_block"]))
    inject = list(reversed(_per_block(config["decoder_inject_noise"], up_blocks + 1)))
    up_scaling = list(reversed(_per_block(config["decoder_spatio_temporal_scaling"], up_blocks)))
    residual = list(reversed(_per_block(config["upsample_residual"], up_blocks)))
    factor = list(reversed(config["upsample_factor"]))
    decoder_blocks: list = [["res_x", {"num_layers": decoder_layers[0], "inject_noise": inject[0]}]]
    for index in range(up_blocks):
        if up_scaling[index]:
            upsample = _UPSAMPLE_BLOCKS[config["upsample_type"][index]]
            decoder_blocks.append([upsample, {"residual": residual[index], "multiplier": factor[index]}])
        decoder_blocks.append(["res_x", {"num_layers": decoder_layers[index + 1], "inject_noise": inject[index + 1]}])
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": config["in_channels"],
        "out_channels": config["out_channels"],
        "latent_channels": config["latent_channels"],
        "encoder_blocks": encoder_blocks,
        # ltx-core's VideoDecoder builds `reversed(decoder_blocks)`: the list starts at the pixel side.
        "decoder_blocks": decoder_blocks[::-1],
        "decoder_base_channels": _decoder_base_channels(config),
        "patch_size": config["patch_size"],
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "causal_decoder": config["decoder_causal"],
        "timestep_conditioning": config["timestep_conditioning"],
        "spatial_padding_mode": config["decoder_spatial_padding_mode"],
        "encoder_spatial_padding_mode": config["encoder_spatial_padding_mode"],
    }


def _decoder_base_channels(config: Mapping[str, Any]) -> int:
    """ltx-core's `decoder_base_channels`: its decoder's first convolution has 8 times as many channels."""
    channels = config["decoder_block_out_channels"][-1]  # diffusers' conv_in width (its lists run the other way)
    if channels % 8:
        raise CheckpointError(
            f"single-file save: the video decoder's first convolution has {channels} channels; ltx-core builds it "
            "with 8 x decoder_base_channels, so it cannot describe this decoder (use a multiple of 8)"
        )
    return channels // 8


def _ltx_audio_vae(config: Mapping[str, Any]) -> dict:
    section: dict = {}
    for path, name in _AUDIO_VAE_FIELDS:
        _set(section, path, list(config[name]) if isinstance(config[name], tuple) else config[name])
    # diffusers' None means no attention; ltx-core tests `res in attn_resolutions` and takes a missing entry
    # as {8, 16, 32}: the empty list is the one value that means the same to both.
    _set(section, "model.params.ddconfig.attn_resolutions", list(config.get("attn_resolutions") or []))
    _set(section, "preprocessing.mel.n_mel_channels", config["mel_bins"])
    return section


def _ltx_vocoder(config: Mapping[str, Any]) -> dict:
    """2.0: the flat HiFi-GAN section; 2.3+ (LTX2VocoderWithBWE): `vocoder` and `bwe` sections."""
    if "bwe_hidden_channels" not in config:
        return {**_vocoder_fields(config, ""), "resblock": "1", "stereo": True,
                "output_sampling_rate": config["output_sampling_rate"],
                "use_tanh_at_final": config.get("final_act_fn") == "tanh"}
    vocoder = {**_vocoder_fields(config, ""), "resblock": "AMP1", "stereo": True, "activation": config["act_fn"]}
    bwe = {
        **_vocoder_fields(config, "bwe_"),
        "resblock": "AMP1",
        "stereo": True,
        "activation": config["bwe_act_fn"],
        "input_sampling_rate": config["input_sampling_rate"],
        "output_sampling_rate": config["output_sampling_rate"],
        "n_fft": config["filter_length"],
        "hop_length": config["hop_length"],
        "num_mels": config["num_mel_channels"],
    }
    return {"vocoder": vocoder, "bwe": bwe}


def _vocoder_fields(config: Mapping[str, Any], prefix: str) -> dict:
    return {ltx_name: _plain(config[prefix + name]) for ltx_name, name in _VOCODER_FIELDS if prefix + name in config}


def _per_block(value, count: int) -> list:
    return [value] * count if isinstance(value, bool) else list(value)


def _plain(value):
    """Tuples as JSON lists, nested."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _set(section: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        section = section.setdefault(part, {})
    section[leaf] = value
