"""Single files of LTX-2.3 and 2.5: written, read back by LTX2Model, and the version told by the file itself."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
from tests.conftest import tiny_model_config
from toolkit.errors import ModelLoadError
from tests.ltx2.single_file_writer.write import save_single_file
from extensions_built_in.diffusion_models.ltx2.single_file.header import read_header
from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2

ALL_HELD = ("connectors", "transformer", "vae", "audio_vae", "vocoder")


@pytest.fixture(scope="module")
def version_files(tiny_cache_dir, tmp_path_factory):
    """Tiny 2.3 and 2.5 folders and the single files written from them."""
    folder = tmp_path_factory.mktemp("single_versions")
    files = {}
    for version in ("2.3", "2.5"):
        tiny = ensure_tiny_ltx2(version=version)
        files[version] = (tiny, save_single_file(tiny, folder / f"ltx-{version}-tiny.safetensors"))
    return files


def load(single_file, base) -> LTX2Model:
    return LTX2Model(tiny_model_config(name_or_path=str(single_file), base_model_path=str(base)), "cpu").load_model()


def rewrite(source, target, drop_metadata=(), drop_keys=()) -> str:
    """A copy of `source` without some header entries / tensors, as other exporters write files."""
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as handle:
        metadata = {key: value for key, value in handle.metadata().items() if key not in drop_metadata}
    tensors = {key: value for key, value in load_file(str(source)).items() if not key.startswith(tuple(drop_keys))}
    save_file(tensors, str(target), metadata=metadata)
    return str(target)


def same_outputs(model: LTX2Model, reference: LTX2Model) -> None:
    """Equal noise predictions (text encoder, connectors, transformer), vocoder waveforms and decoded frames."""
    generator = torch.Generator().manual_seed(11)
    video = torch.randn(1, 4, 2, 4, 6, generator=generator)
    audio = torch.randn(1, 1, 25, 4, generator=generator)
    sigmas = torch.tensor([0.4])
    expected = reference.get_noise_prediction(video, audio, sigmas, reference.get_prompt_embeds(["a cat"]), fps=24.0)
    predicted = model.get_noise_prediction(video, audio, sigmas, model.get_prompt_embeds(["a cat"]), fps=24.0)
    # Same weights; CPU kernels round in the last bit depending on where a weight sits in memory, and
    # diffusers' folder loader leaves weights at the file's (unaligned) offsets: float32 rounding tolerance.
    torch.testing.assert_close(predicted.video, expected.video, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(predicted.audio, expected.audio, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        mel = torch.randn(1, 2, 9, 16, generator=generator)
        waveform = model.components["vocoder"](mel)
        torch.testing.assert_close(waveform, reference.components["vocoder"](mel), rtol=1e-5, atol=1e-6)
        latents = torch.randn(1, 4, 2, 4, 4, generator=generator)
        decoded = model.components["vae"].decode(latents, return_dict=False)[0]
        expected_frames = reference.components["vae"].decode(latents, return_dict=False)[0]
        torch.testing.assert_close(decoded, expected_frames, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("version", ["2.3", "2.5"])
def test_round_trip_gives_the_folder_models_outputs(version, version_files, tiny_models):
    folder, single_file = version_files[version]
    model = load(single_file, folder)
    assert model.source.single_file_components == ALL_HELD
    assert model.variant.version == version
    assert model.variant.flags == tiny_models(version).variant.flags
    assert type(model.components["vocoder"]).__name__ == "LTX2VocoderWithBWE"
    same_outputs(model, tiny_models(version))


@pytest.mark.parametrize("version", ["2.3", "2.5"])
def test_header_carries_the_version_and_the_config(version, version_files):
    _, single_file = version_files[version]
    header = read_header(single_file)
    assert header.metadata["model_version"] == f"{version}.0"
    transformer = header.ltx_config["transformer"]
    assert transformer["apply_gated_attention"] is True and transformer["cross_attention_adaln"] is True
    assert transformer["caption_proj_before_connector"] is True
    assert transformer["ff_bias"] is (version == "2.3")
    assert transformer["use_keyframes_abs_pos_embedding"] is (version == "2.5")
    assert transformer["use_prompt_adaln_single"] is True  # 2.5 keeps it (diffusers' converter)
    assert set(header.ltx_config["vocoder"]) == {"vocoder", "bwe"}
    assert header.ltx_config["vocoder"]["bwe"]["output_sampling_rate"] == 48000
    assert header.diffusers_configs["vocoder"]["_class_name"] == "LTX2VocoderWithBWE"
    assert len(header.diffusers_configs["vae"]["decoder_block_out_channels"]) == 4


def test_a_2_3_file_with_the_original_names_loads_over_a_2_0_base(version_files, tiny_model_dir, tiny_models, tmp_path):
    """As Lightricks writes it: original key names and the ltx-core `config`, nothing diffusers-specific."""
    folder, single_file = version_files["2.3"]
    lightricks = rewrite(single_file, tmp_path / "ltx-2.3.safetensors", drop_metadata=("diffusers", "model_version"))
    keys = set(read_header(lightricks).shapes)
    for original in (
        "model.diffusion_model.prompt_adaln_single.linear.weight",
        "model.diffusion_model.audio_prompt_adaln_single.emb.timestep_embedder.linear_1.weight",
        "model.diffusion_model.transformer_blocks.0.attn1.to_gate_logits.weight",
        "text_embedding_projection.video_aggregate_embed.weight",
        "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_gate_logits.weight",
        "vae.decoder.up_blocks.7.conv.conv.weight",  # the fourth upsampler, past diffusers' converter table
        "vae.decoder.up_blocks.8.res_blocks.0.conv1.conv.weight",
        "vocoder.vocoder.conv_pre.weight",
        "vocoder.bwe_generator.resblocks.0.acts1.0.downsample.lowpass.filter",
        "vocoder.mel_stft.stft_fn.forward_basis",
    ):
        assert original in keys, original
    model = load(lightricks, tiny_model_dir)  # the base is 2.0: the file alone makes it a 2.3 model
    assert model.variant.version == "2.3"
    described = model.source.describe()["single_file"]
    assert described == {"components": list(ALL_HELD), "version": "2.3", "version_from": "config"}
    same_outputs(model, tiny_models("2.3"))


def test_version_from_tensor_names_when_the_header_says_nothing(version_files, tiny_model_dir, tmp_path):
    folder, single_file = version_files["2.3"]
    bare = rewrite(single_file, tmp_path / "bare.safetensors", drop_metadata=("config", "diffusers", "model_version"))
    header = read_header(bare)
    assert (header.version, header.version_source) == ("2.3", "tensor names")
    # Without a config in the file, configs come from the base folder: a 2.0 one cannot describe this file.
    with pytest.raises(ModelLoadError) as error:
        load(bare, tiny_model_dir)
    message = str(error.value)
    assert "bare.safetensors" in message and "LTX-2.3" in message and str(tiny_model_dir) in message
    assert "point base_model_path at a diffusers folder of LTX-2.3" in message
    assert load(bare, folder).variant.version == "2.3"  # a 2.3 base describes it


@pytest.mark.parametrize("version", ["2.0", "2.3", "2.5"])
def test_each_version_is_told_by_its_tensor_names_alone(version, version_files, tiny_model_dir, tmp_path):
    if version == "2.0":
        source = save_single_file(tiny_model_dir, tmp_path / "ltx-2.0.safetensors")
    else:
        source = version_files[version][1]
    bare = rewrite(source, tmp_path / "bare.safetensors", drop_metadata=("config", "diffusers", "model_version"))
    assert read_header(bare).version == version
    assert read_header(source).version_source == "model_version"


def test_a_file_missing_weights_names_the_file_and_the_component(version_files, tmp_path):
    folder, single_file = version_files["2.3"]
    dropped = ("model.diffusion_model.prompt_adaln_single.",)
    broken = rewrite(single_file, tmp_path / "broken.safetensors", drop_keys=dropped)
    with pytest.raises(ModelLoadError) as error:
        load(broken, folder)
    message = str(error.value)
    assert "broken.safetensors" in message and "the transformer (LTX2VideoTransformer3DModel" in message
    assert "6 weights missing (first: prompt_adaln.emb.timestep_embedder" in message
    assert "model.base_model_path" in message


def test_components_a_file_lacks_come_from_the_base(version_files, tiny_models, tmp_path):
    folder, single_file = version_files["2.3"]
    without_vocoder = rewrite(single_file, tmp_path / "no_vocoder.safetensors", drop_keys=("vocoder.",))
    model = load(without_vocoder, folder)
    assert "vocoder" not in model.source.single_file_components
    reference = tiny_models("2.3").components["vocoder"].state_dict()
    loaded = model.components["vocoder"].state_dict()
    assert all(torch.equal(loaded[key], reference[key]) for key in reference)


def test_a_2_5_file_needs_a_gemma_4_base(version_files, tmp_path):
    folder_23, _ = version_files["2.3"]
    _, single_file = version_files["2.5"]
    with pytest.raises(ModelLoadError, match=r"LTX-2\.5 .*needs a Gemma 4 text encoder") as error:
        load(single_file, folder_23)
    assert str(folder_23) in str(error.value)


def test_written_config_survives_json(version_files):
    """The `diffusers` entry rebuilds the exact classes: every value is plain JSON."""
    _, single_file = version_files["2.5"]
    configs = json.loads(read_header(single_file).metadata["diffusers"])
    assert configs["transformer"]["use_keyframes_abs_pos_embedding"] is True
    assert configs["transformer"]["ff_bias"] is False
