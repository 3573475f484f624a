"""tiny-ltx2.3 and tiny-ltx2.5: built from the real classes with each version's flags, loaded through
LTX2Model.load_model (classes from model_index.json), the version read from the configs, and every phase run."""

from __future__ import annotations

import json

import av
import pytest
import torch

from extensions_built_in.diffusion_models.ltx2.LTX2Model import GenerationSettings
from extensions_built_in.diffusion_models.ltx2.tiny.model import TINY_NAMES, ensure_tiny_ltx2

VERSIONS = ["2.3", "2.5"]
EXPECTED_CLASSES = {
    "2.3": {"vocoder": "LTX2VocoderWithBWE", "text_encoder": "Gemma3ForConditionalGeneration"},
    "2.5": {"vocoder": "LTX2VocoderWithBWE", "text_encoder": "Gemma4UnifiedForConditionalGeneration"},
}


def test_tiny_names_map_to_versions():
    assert TINY_NAMES == {"tiny-ltx2": "2.0", "tiny-ltx2.3": "2.3", "tiny-ltx2.5": "2.5"}


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_folder_has_the_version_flags(tiny_cache_dir, version):
    folder = ensure_tiny_ltx2(version=version)
    assert folder.name.startswith(f"tiny-ltx{version}-")
    index = json.loads((folder / "model_index.json").read_text())
    transformer = json.loads((folder / "transformer" / "config.json").read_text())
    connectors = json.loads((folder / "connectors" / "config.json").read_text())
    vae = json.loads((folder / "vae" / "config.json").read_text())
    assert index["vocoder"][1] == EXPECTED_CLASSES[version]["vocoder"]
    assert index["text_encoder"][1] == EXPECTED_CLASSES[version]["text_encoder"]
    assert transformer["gated_attn"] and transformer["cross_attn_mod"] and transformer["perturbed_attn"]
    assert transformer["use_prompt_embeddings"] is False
    assert connectors["per_modality_projections"] and connectors["video_gated_attn"]
    assert len(vae["decoder_block_out_channels"]) == 4  # the 2.3 decoder's fourth up-block
    assert transformer["ff_bias"] is (version == "2.3")
    assert transformer["use_keyframes_abs_pos_embedding"] is (version == "2.5")
    assert ensure_tiny_ltx2(version=version) == folder  # cached: the marker matches, nothing rebuilt


@pytest.mark.parametrize("version", VERSIONS)
def test_load_model_reads_the_version_and_the_classes_from_the_folder(tiny_models, version):
    model = tiny_models(version)
    assert model.variant.version == version
    assert model.variant.arch == f"ltx{version}"
    assert type(model.vocoder).__name__ == EXPECTED_CLASSES[version]["vocoder"]
    assert type(model.text_encoder).__name__ == EXPECTED_CLASSES[version]["text_encoder"]
    assert model.variant.flags["gated_attn"] and model.variant.flags["per_modality_projections"]
    assert model.variant.flags["ff_without_bias"] is (version == "2.5")
    assert model.variant.flags["gemma4_text_encoder"] is (version == "2.5")
    for name, module in model.components.items():
        if isinstance(module, torch.nn.Module):
            assert not any(p.is_meta for p in module.parameters()), name


@pytest.mark.parametrize("version", VERSIONS)
def test_encode_predict_on_each_version(tiny_models, version):
    model = tiny_models(version)
    prompt = model.get_prompt_embeds(["a red square", "a blue circle"])
    # 2.3+: the connectors project straight to the transformer's widths (video 2x8, audio 2x4).
    assert tuple(prompt["video"].shape) == (2, 128, 16)
    assert tuple(prompt["audio"].shape) == (2, 128, 8)
    frames = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    latents = model.encode_images(frames).latents
    assert tuple(latents.shape) == (1, 4, 2, 4, 4)
    generator = torch.Generator().manual_seed(3)
    video = torch.randn(2, 4, 2, 4, 4, generator=generator)
    audio = torch.randn(2, 1, 25, 4, generator=generator)
    sigmas = torch.tensor([0.7, 0.2])
    first = model.get_noise_prediction(video, audio, sigmas, prompt, fps=24.0)
    assert first.video.shape == video.shape and first.audio.shape == audio.shape
    assert torch.isfinite(first.video).all() and torch.isfinite(first.audio).all()
    other = model.get_noise_prediction(video, audio, torch.tensor([0.1, 0.9]), prompt, fps=24.0)
    assert not torch.allclose(first.video, other.video, atol=1e-4)


@pytest.mark.parametrize("version", VERSIONS)
def test_generate_writes_48khz_audio_from_the_bwe_vocoder(tiny_models, version, tmp_path):
    model = tiny_models(version)
    settings = GenerationSettings(width=32, height=32, num_frames=9, fps=24, steps=2, guidance_scale=1.0, seed=1)
    clip = model.generate_single_image("a red square", tmp_path / "clip.mp4", settings)
    assert clip.sample_rate == 48000
    with av.open(str(clip.path)) as container:
        assert container.streams.audio[0].sample_rate == 48000
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (32, 32, 3)
