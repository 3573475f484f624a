"""The original LTX-2 single-file layout: written by save_single_file, read back by diffusers and LTX2Model."""

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
from toolkit.models.single_file import SINGLE_FILE_PREFIXES, save_single_file

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
    prefix = SINGLE_FILE_PREFIXES[component]
    return {key: value for key, value in state.items() if key.startswith(prefix)}


def test_file_uses_the_original_key_names(original_state, tiny_model):
    keys = set(original_state)
    assert all(key.startswith(tuple(SINGLE_FILE_PREFIXES.values())) for key in keys)
    expected_count = sum(len(tiny_model.components[name].state_dict()) for name in SINGLE_FILE_PREFIXES)
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
    ):
        assert original in keys, original
    diffusers_only = ("proj_in", "time_embed", "norm_q", "norm_k", "resnets", "mid_block", "samplers", "latents_")
    assert [key for key in keys if any(name in key for name in diffusers_only)] == []


@pytest.mark.parametrize("component", list(SINGLE_FILE_PREFIXES))
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
        assert handle.metadata()["format"] == "pt"


@pytest.fixture(scope="module")
def single_file_model(single_file, tiny_model_dir):
    config = tiny_model_config(name_or_path=str(single_file), base_model_path=str(tiny_model_dir))
    return LTX2Model(config, "cpu").load_model()


def test_ltx2model_loads_the_single_file_with_a_base_folder(single_file_model, single_file, tiny_model_dir):
    source = single_file_model.source
    assert source.kind == "single_file"
    assert source.location == str(single_file)
    assert source.base == str(tiny_model_dir)
    assert source.single_file_components == ("transformer", "vae", "audio_vae")


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
    with pytest.raises(CheckpointError, match="missing"):
        save_single_file({"transformer": torch.nn.Linear(2, 2)}, tmp_path / "model.safetensors")
