"""The original LTX-2 (2.0) single-file layout: written by save_single_file, read back by diffusers and LTX2Model.

2.3 and 2.5 files, the header's `config` and the readers of Lightricks and
ComfyUI are in test_ltx2_single_file_versions.py and
test_ltx2_single_file_readers.py.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.loaders import single_file_utils
from safetensors import safe_open
from safetensors.torch import load_file

from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
from extensions_built_in.diffusion_models.ltx2.checkpoint import resolve_source
from tests.conftest import tiny_model_config
from toolkit.errors import CheckpointError, ModelLoadError
from extensions_built_in.diffusion_models.ltx2.single_file.keys import SINGLE_FILE_COMPONENTS, component_of
from tests.ltx2.single_file_writer.write import save_single_file

CONVERTERS = {
    "transformer": single_file_utils.convert_ltx2_transformer_to_diffusers,
    "vae": single_file_utils.convert_ltx2_vae_to_diffusers,
    "audio_vae": single_file_utils.convert_ltx2_audio_vae_to_diffusers,
}


@pytest.fixture(scope="module")
def single_file(tiny_model_dir, tmp_path_factory):
    return save_single_file(tiny_model_dir, tmp_path_factory.mktemp("single") / "ltx-2-tiny.safetensors")


@pytest.fixture(scope="module")
def original_state(single_file):
    return load_file(str(single_file))


def component_keys(state: dict, component: str) -> dict:
    return {key: value for key, value in state.items() if component_of(key) == component}


def test_file_uses_the_original_key_names(original_state, tiny_model):
    keys = set(original_state)
    assert all(component_of(key) in SINGLE_FILE_COMPONENTS for key in keys)
    expected_count = sum(len(tiny_model.components[name].state_dict()) for name in SINGLE_FILE_COMPONENTS)
    assert len(keys) == expected_count
    for original in (
        "model.diffusion_model.patchify_proj.weight",
        "model.diffusion_model.audio_patchify_proj.weight",
        "model.diffusion_model.adaln_single.linear.weight",
        "model.diffusion_model.audio_adaln_single.linear.weight",
        "model.diffusion_model.av_ca_a2v_gate_adaln_single.emb.timestep_embedder.linear_1.weight",
        "model.diffusion_model.transformer_blocks.0.scale_shift_table_a2v_ca_video",
        "model.diffusion_model.transformer_blocks.1.attn1.q_norm.weight",
        "vae.per_channel_statistics.mean-of-means",
        "vae.per_channel_statistics.std-of-means",
        "vae.encoder.down_blocks.0.res_blocks.0.conv1.conv.weight",
        "vae.encoder.down_blocks.7.conv.conv.weight",  # the last downsampler
        "vae.encoder.down_blocks.8.res_blocks.0.conv1.conv.weight",  # the encoder's mid block
        "vae.decoder.up_blocks.0.res_blocks.0.conv1.conv.weight",  # the decoder's mid block
        "vae.decoder.up_blocks.1.conv.conv.weight",  # the first upsampler
        "vae.decoder.up_blocks.6.res_blocks.0.conv2.conv.bias",
        "audio_vae.per_channel_statistics.mean-of-means",
        "audio_vae.encoder.mid.block_1.conv1.conv.weight",
        "text_embedding_projection.aggregate_embed.weight",  # the connectors' projection
        "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.q_norm.weight",
        "model.diffusion_model.audio_embeddings_connector.transformer_1d_blocks.0.ff.net.2.weight",
        "vocoder.conv_pre.weight",
        "vocoder.ups.2.weight",
        "vocoder.resblocks.0.convs1.1.weight",
        "vocoder.conv_post.bias",
    ):
        assert original in keys, original
    diffusers_only = ("proj_in", "time_embed", "norm_q", "norm_k", "resnets", "mid_block", "samplers", "latents_",
                      "vocoder.conv_in", "vocoder.conv_out", "video_connector.", "vocoder.upsamplers")
    assert [key for key in keys if any(name in key for name in diffusers_only)] == []


@pytest.mark.parametrize("component", list(CONVERTERS))
def test_diffusers_converter_gives_back_the_diffusers_state_dict(original_state, tiny_model, component):
    converted = CONVERTERS[component](component_keys(original_state, component))
    expected = tiny_model.components[component].state_dict()
    assert sorted(converted) == sorted(expected)
    unequal = [key for key in expected if not torch.equal(converted[key], expected[key])]
    assert unequal == []


def test_components_mapping_and_folder_write_the_same_file(single_file, original_state, tiny_model, tmp_path):
    from_modules = save_single_file(tiny_model.components, tmp_path / "from_modules.safetensors")
    again = load_file(str(from_modules))
    assert sorted(again) == sorted(original_state)
    assert all(torch.equal(again[key], original_state[key]) for key in again)
    with safe_open(str(single_file), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "pt"
    assert metadata["model_version"] == "2.0.0"


@pytest.fixture(scope="module")
def single_file_model(single_file, tiny_model_dir):
    config = tiny_model_config(name_or_path=str(single_file), base_model_path=str(tiny_model_dir))
    return LTX2Model(config, "cpu").load_model()


def test_ltx2model_loads_the_single_file_with_a_base_folder(single_file_model, single_file, tiny_model_dir):
    source = single_file_model.source
    assert source.kind == "single_file"
    assert source.location == str(single_file)
    assert source.base == str(tiny_model_dir)
    # Everything the file holds is read from it; only text encoder, tokenizer and scheduler from the base.
    assert source.single_file_components == ("connectors", "transformer", "vae", "audio_vae", "vocoder")
    assert source.describe()["single_file"]["version"] == "2.0"


def test_single_file_model_predicts_what_the_folder_model_predicts(single_file_model, tiny_model):
    generator = torch.Generator().manual_seed(3)
    video = torch.randn(1, 4, 2, 4, 6, generator=generator)
    audio = torch.randn(1, 1, 25, 4, generator=generator)
    sigmas = torch.tensor([0.6])
    reference_prompt = tiny_model.get_prompt_embeds(["a red square"])
    expected = tiny_model.get_noise_prediction(video, audio, sigmas, reference_prompt, fps=24.0)
    prompt = single_file_model.get_prompt_embeds(["a red square"])
    predicted = single_file_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0)
    # Same weights; CPU kernels round in the last bit depending on where a weight sits in memory, and
    # diffusers' folder loader leaves weights at the file's (unaligned) offsets: float32 rounding tolerance.
    torch.testing.assert_close(predicted.video, expected.video, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(predicted.audio, expected.audio, rtol=1e-5, atol=1e-6)
    mel = torch.randn(1, 2, 9, 16, generator=generator)
    with torch.no_grad():
        expected_waveform = tiny_model.components["vocoder"](mel)
        waveform = single_file_model.components["vocoder"](mel)
        torch.testing.assert_close(waveform, expected_waveform, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("component", ["transformer", "vae", "audio_vae", "vocoder", "connectors"])
def test_single_file_weights_equal_the_diffusers_layout(single_file_model, tiny_model, component):
    loaded = single_file_model.components[component].state_dict()
    expected = tiny_model.components[component].state_dict()
    assert sorted(loaded) == sorted(expected)
    assert all(loaded[key].device.type == "cpu" for key in loaded)  # nothing left on the meta device
    unequal = [key for key in expected if not torch.equal(loaded[key], expected[key])]
    assert unequal == []


def test_single_file_without_base_model_path_says_what_to_set(single_file):
    with pytest.raises(ModelLoadError, match="model.base_model_path"):
        resolve_source(str(single_file))


def test_save_single_file_rejects_bad_targets(tmp_path, tiny_model_dir):
    with pytest.raises(CheckpointError, match=r"must end in \.safetensors"):
        save_single_file(tiny_model_dir, tmp_path / "model.ckpt")
    with pytest.raises(CheckpointError, match="no model_index.json"):
        save_single_file(tmp_path, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"components \['vae', 'audio_vae'\] are missing"):
        save_single_file({"transformer": torch.nn.Linear(2, 2)}, tmp_path / "model.safetensors")
