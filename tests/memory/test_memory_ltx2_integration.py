"""Quantization, layer offloading and low_vram as the LTX-2 loader and the trainer use them."""

from __future__ import annotations

import torch

from toolkit.memory_management import module_bytes, tensor_bytes


def _load(tiny_model_dir, **settings):
    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from toolkit.config import ModelConfig

    config = ModelConfig(name_or_path=str(tiny_model_dir), dtype="fp32", **settings)
    return LTX2Model(config, "cpu").load_model()


def test_quantized_transformer_is_smaller_and_predicts_close(tiny_model_dir, tiny_model):
    quantized = _load(tiny_model_dir, quantize=True, qtype="qint8")
    quantized_layers = [n for n, m in quantized.transformer.named_modules() if type(m).__name__ == "QLinear"]
    assert len(quantized_layers) >= 24  # 8-wide audio layers stay fp32 (too small to gain)
    full_modules = dict(tiny_model.transformer.named_modules())
    quantized_modules = dict(quantized.transformer.named_modules())
    before = sum(tensor_bytes(full_modules[name].weight) for name in quantized_layers)
    after = sum(tensor_bytes(quantized_modules[name].weight) for name in quantized_layers)
    # int8 weights are 4x smaller than fp32; the per-row scales of these 16-to-64-wide layers take a little back.
    assert 3.0 < before / after <= 4.0
    assert module_bytes(quantized.transformer) < module_bytes(tiny_model.transformer) - (before - after) * 0.99
    assert "transformer_blocks.0.attn1.to_q" in quantized_layers
    assert "proj_in" not in quantized_layers and "audio_proj_out" not in quantized_layers

    generator = torch.Generator().manual_seed(0)
    video = torch.randn(1, 4, 2, 8, 8, generator=generator)
    audio = torch.randn(1, 1, 10, 4, generator=generator)
    prompt = tiny_model.get_prompt_embeds(["a red square"])
    sigmas = torch.tensor([0.5])
    reference = tiny_model.get_noise_prediction(video, audio, sigmas, prompt, fps=24)
    approximate = quantized.get_noise_prediction(video, audio, sigmas, prompt, fps=24)
    error = (approximate.video - reference.video).norm() / reference.video.norm()
    assert 0 < error < 0.05


def test_low_vram_and_text_encoder_offloading_keep_results(tiny_model_dir, tiny_model):
    frugal = _load(tiny_model_dir, low_vram=True, layer_offloading=True, layer_offloading_text_encoder_percent=1.0)
    assert frugal.text_encoder._ltx2_offloaded
    expected = tiny_model.get_prompt_embeds(["a blue circle"])
    actual = frugal.get_prompt_embeds(["a blue circle"])
    torch.testing.assert_close(actual["video"], expected["video"])
    frames = torch.rand(1, 3, 9, 64, 64) * 2 - 1
    torch.testing.assert_close(frugal.encode_images(frames).latents, tiny_model.encode_images(frames).latents)
