"""A written single file, checked with the rules the other readers of LTX-2 files apply.

Neither Lightricks' ltx-core nor ComfyUI can run here (and their code builds
the published sizes: ltx-core's vocoder has 128 mel input channels fixed in
code), so their detection rules are restated below as facts, taken from
their source:

- ltx-core (packages/ltx-core, loader/sft_loader.py and the
  model_configurator.py of transformer, video_vae, audio_vae and
  text_encoders/gemma): `SafetensorsModelStateDictLoader.metadata` parses
  each header entry as JSON when it is JSON; `LTXModelConfigurator` reads
  `config["transformer"]` and rejects a file (`check_config_value`) whose
  constants differ from TRANSFORMER_CONSTANTS, or whose video and audio head
  counts differ; the video VAE takes `config["vae"]` (`_class_name`
  CausalVideoAutoencoder, `encoder_blocks` / `decoder_blocks`) and keys under
  `vae.encoder.` / `vae.decoder.` / `vae.per_channel_statistics.`; the audio
  VAE `config["audio_vae"]["model"]["params"]["ddconfig"]`; the vocoder is
  `VocoderWithBWE` exactly when `config["vocoder"]` has a `bwe` section
  (`resblock` AMP1, `activation` snakebeta, stereo), else a HiFi-GAN
  (`resblock` "1"), with `vocoder.` stripped once from its keys; the text
  connectors are `text_embedding_projection.*` and
  `model.diffusion_model.{video,audio}_embeddings_connector.*`, sized by the
  `connector_*` fields of `config["transformer"]`.
- ComfyUI (comfy/model_detection.py): an LTX-2 transformer is recognised by
  `adaln_single.emb.timestep_embedder.linear_1.bias`, the audio-video model
  (`ltxav`) by `audio_adaln_single.linear.weight`; it counts
  `transformer_blocks.N`, guesses `attention_head_dim` as attn2's output
  width / 32 and `cross_attention_dim` as its input width, then lets
  `config["transformer"]` from the header override what it guessed.
- diffusers: the marker keys of its LTX-2 single-file detection (`CHECKPOINT_KEY_NAMES["ltx2"]`).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors import safe_open

from extensions_built_in.diffusion_models.ltx2.single_file.export import save_single_file
from extensions_built_in.diffusion_models.ltx2.tiny.model import build_components

PREFIX = "model.diffusion_model."
TRANSFORMER_CONSTANTS = {
    "dropout": 0.0,
    "attention_bias": True,
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
}
ENCODER_BLOCKS = {"res_x", "compress_space_res", "compress_time_res", "compress_all_res"}
DECODER_BLOCKS = {"res_x", "compress_space", "compress_time", "compress_all"}
VERSIONS = ("2.0", "2.3", "2.5")


@pytest.fixture(scope="module", params=VERSIONS)
def written(request, tmp_path_factory):
    """(version, diffusers components, header metadata as ltx-core parses it, tensor shapes) of a written file."""
    version = request.param
    components = build_components(version=version)
    path = save_single_file(components, tmp_path_factory.mktemp("readers") / f"ltx-{version}.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        metadata = {key: _ltx_core_parse(value) for key, value in handle.metadata().items()}
    return version, components, metadata, shapes


def _ltx_core_parse(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _count(shapes, pattern: str) -> int:
    indices = {int(m[1]) for key in shapes if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def test_ltx_core_reads_the_version_and_the_transformer_section(written):
    version, components, metadata, shapes = written
    assert metadata["model_version"] == f"{version}.0"  # stays a string when ltx-core parses it
    section = metadata["config"]["transformer"]
    assert {key: section.get(key) for key in TRANSFORMER_CONSTANTS} == TRANSFORMER_CONSTANTS
    assert section["num_attention_heads"] == section["audio_num_attention_heads"]
    transformer = components["transformer"].config
    blocks = _count(shapes, rf"{re.escape(PREFIX)}transformer_blocks\.(\d+)\.")
    assert section["num_layers"] == transformer.num_layers == blocks
    assert section["in_channels"] == shapes[f"{PREFIX}patchify_proj.weight"][1]
    assert section["audio_in_channels"] == shapes[f"{PREFIX}audio_patchify_proj.weight"][1]
    gated = f"{PREFIX}transformer_blocks.0.attn1.to_gate_logits.weight" in shapes
    assert section["apply_gated_attention"] is gated is (version != "2.0")
    assert section["cross_attention_adaln"] is (f"{PREFIX}transformer_blocks.0.prompt_scale_shift_table" in shapes)
    prompt_adaln = f"{PREFIX}prompt_adaln_single.linear.weight" in shapes
    assert prompt_adaln is (section["cross_attention_adaln"] and section["use_prompt_adaln_single"])
    assert section["ff_bias"] is (f"{PREFIX}transformer_blocks.0.ff.net.0.proj.bias" in shapes)
    assert section["use_keyframes_abs_pos_embedding"] is (f"{PREFIX}keyframes_abs_pos_embedding" in shapes)
    # 19B-style files project the caption in the transformer; 2.3+ in the text connectors.
    assert section["caption_proj_before_connector"] is (f"{PREFIX}caption_projection.linear_1.weight" not in shapes)


def test_ltx_core_sizes_the_connectors_from_the_transformer_section(written):
    version, _, metadata, shapes = written
    section = metadata["config"]["transformer"]
    for modality, field_prefix in (("video", "connector_"), ("audio", "audio_connector_")):
        prefix = rf"{re.escape(PREFIX)}{modality}_embeddings_connector\.transformer_1d_blocks\.(\d+)\."
        assert section[f"{field_prefix}num_layers"] == _count(shapes, prefix)
        q_width = shapes[f"{PREFIX}{modality}_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.weight"][0]
        assert section[f"{field_prefix}num_attention_heads"] * section[f"{field_prefix}attention_head_dim"] == q_width
    per_modality = "text_embedding_projection.video_aggregate_embed.weight" in shapes
    assert per_modality is section["caption_proj_before_connector"] is (version != "2.0")
    assert per_modality is not ("text_embedding_projection.aggregate_embed.weight" in shapes)
    gated = f"{PREFIX}video_embeddings_connector.transformer_1d_blocks.0.attn1.to_gate_logits.weight" in shapes
    assert section["connector_apply_gated_attention"] is gated


def test_ltx_core_builds_the_video_vae_blocks_the_file_holds(written):
    version, _, metadata, shapes = written
    vae = metadata["config"]["vae"]
    assert vae["_class_name"] == "CausalVideoAutoencoder"  # ltx-core's conv decoder, not the diffusion decoder
    assert {name for name, _ in vae["encoder_blocks"]} <= ENCODER_BLOCKS
    assert {name for name, _ in vae["decoder_blocks"]} <= DECODER_BLOCKS
    # One original block index per entry: res-block groups and resamplers numbered in one sequence.
    assert len(vae["encoder_blocks"]) == _count(shapes, r"vae\.encoder\.down_blocks\.(\d+)\.")
    assert len(vae["decoder_blocks"]) == _count(shapes, r"vae\.decoder\.up_blocks\.(\d+)\.")
    for index, (name, params) in enumerate(vae["decoder_blocks"]):
        holds_res_blocks = f"vae.decoder.up_blocks.{index}.res_blocks.0.conv1.conv.weight" in shapes
        assert holds_res_blocks is (name == "res_x")
        if name == "res_x":
            assert params["num_layers"] == _count(shapes, rf"vae\.decoder\.up_blocks\.{index}\.res_blocks\.(\d+)\.")
    upsamplers = sum(name != "res_x" for name, _ in vae["decoder_blocks"])
    assert upsamplers == (3 if version == "2.0" else 4)  # the 2.3 decoder's fourth up-block
    assert vae["latent_channels"] == shapes["vae.per_channel_statistics.mean-of-means"][0]


def test_ltx_core_picks_the_vocoder_and_audio_vae_the_file_holds(written):
    version, _, metadata, shapes = written
    vocoder = metadata["config"]["vocoder"]
    with_bwe = any(key.startswith("vocoder.bwe_generator.") for key in shapes)
    assert ("bwe" in vocoder) is with_bwe is (version != "2.0")
    if with_bwe:
        for part in ("vocoder", "bwe"):
            settings = (vocoder[part]["resblock"], vocoder[part]["activation"], vocoder[part]["stereo"])
            assert settings == ("AMP1", "snakebeta", True)
        assert {"input_sampling_rate", "output_sampling_rate", "n_fft", "hop_length", "num_mels"} <= set(vocoder["bwe"])
        assert vocoder["bwe"]["num_mels"] == shapes["vocoder.mel_stft.mel_basis"][0]
        assert vocoder["bwe"]["n_fft"] // 2 + 1 == shapes["vocoder.mel_stft.mel_basis"][1]
        upsamplers = _count(shapes, r"vocoder\.vocoder\.ups\.(\d+)\.")
        assert len(vocoder["vocoder"]["upsample_rates"]) == upsamplers
    else:
        assert (vocoder["resblock"], vocoder["stereo"]) == ("1", True)
        assert len(vocoder["upsample_rates"]) == _count(shapes, r"vocoder\.ups\.(\d+)\.")
        assert vocoder["upsample_initial_channel"] == shapes["vocoder.conv_pre.weight"][0]
    ddconfig = metadata["config"]["audio_vae"]["model"]["params"]["ddconfig"]
    assert ddconfig["z_channels"] == shapes["audio_vae.decoder.conv_in.conv.weight"][1]
    assert ddconfig["ch"] == shapes["audio_vae.encoder.conv_in.conv.weight"][0]


def test_comfyui_detects_an_audio_video_ltx_model_with_the_right_sizes(written):
    _, components, metadata, shapes = written
    assert f"{PREFIX}adaln_single.emb.timestep_embedder.linear_1.bias" in shapes
    assert f"{PREFIX}audio_adaln_single.linear.weight" in shapes  # ltxav, not the video-only ltxv
    attn2 = shapes[f"{PREFIX}transformer_blocks.0.attn2.to_k.weight"]
    detected = {
        "num_layers": _count(shapes, rf"{re.escape(PREFIX)}transformer_blocks\.(\d+)\."),
        "attention_head_dim": attn2[0] // 32,  # ComfyUI assumes the published 32 heads ...
        "cross_attention_dim": attn2[1],
    }
    merged = {**detected, **metadata["config"]["transformer"]}  # ... and the header corrects it
    transformer = components["transformer"].config
    assert merged["num_layers"] == transformer.num_layers
    assert merged["attention_head_dim"] * merged["num_attention_heads"] == attn2[0]
    assert merged["cross_attention_dim"] == transformer.cross_attention_dim
    assert merged["vae_scale_factors"] == list(transformer.vae_scale_factors)


def test_diffusers_finds_its_ltx2_marker_keys(written):
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES

    _, _, _, shapes = written
    # diffusers 0.42.1's infer_diffusers_model_type tests the LTX-Video keys first, which every LTX-2 file
    # (the published one too) also holds (`patchify_proj`), so it answers "ltx-video"; its LTX-2 branch
    # looks for these keys, all of which the file must hold.
    assert [key for key in CHECKPOINT_KEY_NAMES["ltx2"] if key not in shapes] == []
