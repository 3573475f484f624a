"""Diffusers folders of LTX-2.3 and LTX-2.5 that the project's tiny builder did not make: the transformer,
connectors, video VAE and vocoder are constructed here with other sizes and settings (one block, interleaved
RoPE, learnable registers, two connector layers, a wider VAE), saved by diffusers' LTX2Pipeline, and loaded,
encoded, predicted and sampled through LTX2Model."""

from __future__ import annotations

import pytest
import torch

from extensions_built_in.diffusion_models.ltx2.LTX2Model import GenerationSettings, LTX2Model
from tests.conftest import tiny_model_config
from extensions_built_in.diffusion_models.ltx2.tiny.model import build_components
from extensions_built_in.diffusion_models.ltx2.tiny.versions import TRANSFORMER_FLAGS


def foreign_components(version: str) -> dict:
    from diffusers import AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    components = build_components(seed=11, version=version)  # tokenizer, text encoder, audio VAE, scheduler
    text = components["text_encoder"].config.text_config
    torch.manual_seed(12)
    components["transformer"] = LTX2VideoTransformer3DModel(
        in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
        vae_scale_factors=(8, 8, 8), audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=1,
        audio_attention_head_dim=8, audio_cross_attention_dim=8, num_layers=1, caption_channels=text.hidden_size,
        **TRANSFORMER_FLAGS[version],
    )
    components["connectors"] = LTX2TextConnectors(
        caption_channels=text.hidden_size, text_proj_in_factor=text.num_hidden_layers + 1,
        video_connector_num_attention_heads=2, video_connector_attention_head_dim=16, video_connector_num_layers=2,
        video_connector_num_learnable_registers=16, audio_connector_num_attention_heads=1,
        audio_connector_attention_head_dim=8, audio_connector_num_layers=2, audio_connector_num_learnable_registers=16,
        connector_rope_base_seq_len=128, per_modality_projections=True, video_hidden_dim=32, audio_hidden_dim=8,
        video_gated_attn=True, audio_gated_attn=True,
    )
    components["vae"] = AutoencoderKLLTX2Video(
        latent_channels=8, block_out_channels=(8, 16, 16, 16), decoder_block_out_channels=(8, 16, 16, 16),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True, True, True), decoder_inject_noise=(False,) * 5,
        upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"), upsample_residual=(False,) * 4,
        upsample_factor=(1, 1, 1, 1), patch_size=1, decoder_causal=False,
        spatial_compression_ratio=8, temporal_compression_ratio=8,
    )
    audio = components["audio_vae"].config
    components["vocoder"] = LTX2VocoderWithBWE(
        in_channels=audio.output_channels * audio.mel_bins, hidden_channels=24, upsample_kernel_sizes=[8, 8, 20],
        upsample_factors=[4, 4, 10], resnet_kernel_sizes=[3], resnet_dilations=[[1]], bwe_in_channels=16,
        bwe_hidden_channels=8, bwe_upsample_kernel_sizes=[8, 12, 20], bwe_upsample_factors=[4, 6, 10],
        bwe_resnet_kernel_sizes=[3], bwe_resnet_dilations=[[1]], filter_length=64, hop_length=80, window_length=64,
        num_mel_channels=8,
    )
    return components


@pytest.fixture(scope="module", params=["2.3", "2.5"])
def foreign_model(request, tmp_path_factory):
    from diffusers import LTX2Pipeline

    folder = tmp_path_factory.mktemp(f"foreign-{request.param}")
    LTX2Pipeline(**foreign_components(request.param)).save_pretrained(folder, safe_serialization=True)
    model = LTX2Model(tiny_model_config(name_or_path=str(folder), arch=f"ltx{request.param}"), "cpu")
    return request.param, model.load_model()


def test_foreign_folder_loads_as_its_version(foreign_model):
    version, model = foreign_model
    assert model.variant.version == version
    assert type(model.vocoder).__name__ == "LTX2VocoderWithBWE"
    assert model.transformer.config.num_layers == 1 and model.connectors.config.video_connector_num_layers == 2


def test_foreign_folder_encodes_predicts_and_samples(foreign_model, tmp_path):
    _, model = foreign_model
    prompt = model.get_prompt_embeds(["a red square"])
    assert tuple(prompt["video"].shape) == (1, 128, 32) and tuple(prompt["audio"].shape) == (1, 128, 8)
    latents = model.encode_images(torch.rand(1, 3, 9, 32, 32) * 2 - 1).latents
    assert tuple(latents.shape) == (1, 8, 2, 4, 4)
    audio = torch.randn(1, 1, 25, 4)
    prediction = model.get_noise_prediction(latents, audio, torch.tensor([0.5]), prompt, fps=24.0)
    assert prediction.video.shape == latents.shape and torch.isfinite(prediction.video).all()
    settings = GenerationSettings(width=32, height=32, num_frames=9, fps=24, steps=2, guidance_scale=1.0, seed=0)
    clip = model.generate_single_image("a red square", tmp_path / "clip.mp4", settings)
    assert clip.num_frames == 9 and clip.sample_rate == 48000 and clip.path.stat().st_size > 0
