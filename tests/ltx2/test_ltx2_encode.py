"""encode_images and encode_audio on the tiny LTX-2: shapes against the VAEs' compression, normalisation, resampling."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from extensions_built_in.diffusion_models.ltx2 import audio_features
from toolkit.data.audio import resample_audio
from toolkit.errors import DataError


def frames(batch: int, count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, count, height, width, generator=generator) * 2 - 1


def tone(frequency: float, sample_rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    time = torch.arange(int(sample_rate * seconds), dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * frequency * time)).float()


# -- encode_images -------------------------------------------------------------
@pytest.mark.parametrize("count", [9, 17])
def test_video_latents_shape_follows_the_vae_compression(tiny_model, count):
    vae = tiny_model.vae
    assert (vae.spatial_compression_ratio, vae.temporal_compression_ratio) == (8, 8)
    result = tiny_model.encode_images(frames(2, count, 32, 48))
    expected = (
        2,
        vae.config.latent_channels,
        (count - 1) // vae.temporal_compression_ratio + 1,
        32 // vae.spatial_compression_ratio,
        48 // vae.spatial_compression_ratio,
    )
    assert tuple(result.latents.shape) == expected
    assert expected == (2, 4, (count - 1) // 8 + 1, 4, 6)
    assert result.pixel_shape == (2, 3, count, 32, 48)
    assert (result.spatial_compression, result.temporal_compression) == (8, 8)
    assert result.strategy == "direct"
    assert torch.isfinite(result.latents).all()


@pytest.mark.parametrize("count", [8, 10])
def test_frame_count_off_the_8k_plus_1_rule_is_a_data_error(tiny_model, count):
    with pytest.raises(DataError, match=rf"{count} frames; LTX-2 needs 8k\+1 frames"):
        tiny_model.encode_images(frames(1, count, 32, 32))


def test_frames_not_shaped_b_3_t_h_w_is_a_data_error(tiny_model):
    with pytest.raises(DataError, match=r"\(batch, 3, frames, height, width\)"):
        tiny_model.encode_images(torch.zeros(1, 9, 3, 32, 32))


def test_video_latents_are_normalised_with_the_vae_statistics(tiny_model):
    # The tiny VAE's statistics are 0 and 1; a copy with real-looking ones shows the formula.
    vae = copy.deepcopy(tiny_model.vae)
    mean = torch.tensor([0.10, -0.20, 0.30, 0.05])
    std = torch.tensor([0.50, 2.00, 1.50, 0.80])
    vae.latents_mean.copy_(mean)
    vae.latents_std.copy_(std)
    vae.register_to_config(scaling_factor=0.7)
    model = type(tiny_model)(tiny_model.config, "cpu")  # the tiny model's components, with this VAE
    model.components.update({**tiny_model.components, "vae": vae})

    video = frames(1, 9, 32, 32, seed=3)
    with torch.no_grad():
        raw = vae.encode(video).latent_dist.mode()
    expected = (raw - mean.view(1, -1, 1, 1, 1)) * 0.7 / std.view(1, -1, 1, 1, 1)
    latents = model.encode_images(video).latents
    torch.testing.assert_close(latents, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(latents, raw, atol=1e-3)


# -- encode_audio --------------------------------------------------------------
def test_mel_and_audio_latent_shapes(tiny_model):
    audio_vae = tiny_model.audio_vae
    hop = audio_vae.config.mel_hop_length
    waveform = torch.randn(2, 1, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    result = tiny_model.encode_audio(waveform, 16000)
    mel_frames = 16000 // hop
    assert (hop, mel_frames) == (160, 100)
    assert result.mel_shape == (2, 2, mel_frames, audio_vae.config.mel_bins)
    assert (audio_vae.temporal_compression_ratio, audio_vae.mel_compression_ratio) == (4, 4)
    assert tuple(result.latents.shape) == (
        2,
        audio_vae.config.latent_channels,
        mel_frames // audio_vae.temporal_compression_ratio,
        audio_vae.config.mel_bins // audio_vae.mel_compression_ratio,
    )
    assert tuple(result.latents.shape) == (2, 1, 25, 4)
    assert result.sample_rate == 16000
    assert result.is_silence == [False, False]
    assert torch.isfinite(result.latents).all()


def test_log_mel_is_causal(tiny_model):
    # Frame k sees samples up to (k + 1) * hop only: the mel of the first half equals the first half of the mel.
    waveform = torch.randn(1, 2, 16000, generator=torch.Generator().manual_seed(2)) * 0.1
    full = audio_features.log_mel(waveform, 16000, 16, 160)
    half = audio_features.log_mel(waveform[..., :8000], 16000, 16, 160)
    assert tuple(full.shape) == (1, 2, 100, 16)
    assert tuple(half.shape) == (1, 2, 50, 16)
    assert torch.equal(full[:, :, :50], half)


def test_22050_hz_audio_is_resampled_to_the_vae_rate(tiny_model):
    waveform = torch.stack([tone(440, 22050), tone(660, 22050)])[None]  # (1, 2, 22050): one second of stereo
    result = tiny_model.encode_audio(waveform, 22050)
    assert result.sample_rate == tiny_model.audio_sample_rate == 16000
    assert result.waveform_shape == (1, 2, 16000)
    assert result.mel_shape == (1, 2, 100, 16)


def test_resampling_keeps_a_440_hz_tone_at_440_hz():
    resampled = resample_audio(tone(440, 22050)[None, None], 22050, 16000)
    assert tuple(resampled.shape) == (1, 1, 16000)
    spectrum = torch.fft.rfft(resampled[0, 0]).abs()  # one second: bin k is k Hz
    assert int(spectrum.argmax()) == 440
    assert resampled.abs().max().item() == pytest.approx(0.5, abs=0.01)


def test_resampling_removes_what_the_new_rate_cannot_hold():
    # 16 kHz holds up to 8 kHz; the windowed sinc (torchaudio's defaults) rolls off between 7.9 and ~10 kHz.
    above_nyquist = tone(10_000, 22050)[None, None]
    resampled = resample_audio(above_nyquist, 22050, 16000)
    assert resampled.pow(2).mean().sqrt().item() < 0.01 * above_nyquist.pow(2).mean().sqrt().item()
