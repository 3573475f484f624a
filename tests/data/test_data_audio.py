"""Audio resampling keeps pitch; length and channel fitting."""

from __future__ import annotations

import math

import pytest
import torch

from toolkit.data.audio import fit_length, match_channels, resample_audio
from toolkit.errors import DataError


def dominant_frequency(waveform: torch.Tensor, sample_rate: int) -> float:
    """Frequency (Hz) of the largest FFT bin of a 1-D waveform."""
    spectrum = torch.fft.rfft(waveform.to(torch.float64)).abs()
    return spectrum.argmax().item() * sample_rate / waveform.shape[-1]


def tone(frequency: float, sample_rate: int, seconds: float = 1.0) -> torch.Tensor:
    times = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    return (0.5 * torch.sin(2 * math.pi * frequency * times)).to(torch.float32)


@pytest.mark.parametrize(
    ("source_rate", "target_rate"), [(44100, 16000), (48000, 16000), (8000, 16000), (16000, 24000)]
)
def test_440_hz_stays_440_hz(source_rate: int, target_rate: int) -> None:
    resampled = resample_audio(tone(440, source_rate).unsqueeze(0), source_rate, target_rate)
    assert resampled.shape == (1, target_rate)
    assert dominant_frequency(resampled[0], target_rate) == pytest.approx(440, abs=1.0)
    # Amplitude survives (away from the edges, where the filter sees the zero padding).
    assert resampled[0, 1000:-1000].abs().max().item() == pytest.approx(0.5, abs=0.01)


def test_content_above_new_nyquist_is_filtered_out() -> None:
    # 10 kHz is above 8 kHz (Nyquist at 16 kHz): naive decimation would fold it to 6 kHz.
    resampled = resample_audio(tone(10_000, 48000).unsqueeze(0), 48000, 16000)
    assert resampled[0, 1000:-1000].abs().max().item() < 0.01


def test_same_rate_is_unchanged() -> None:
    waveform = tone(440, 16000).unsqueeze(0)
    assert resample_audio(waveform, 16000, 16000) is waveform


def test_fit_length_cuts_and_pads() -> None:
    waveform = torch.ones(2, 10)
    assert fit_length(waveform, 4).shape == (2, 4)
    padded = fit_length(waveform, 15)
    assert padded.shape == (2, 15) and padded[:, 10:].abs().sum() == 0 and padded[:, :10].sum() == 20


def test_match_channels() -> None:
    mono = torch.tensor([[0.1, -0.2]])
    assert torch.equal(match_channels(mono, 2, "x"), torch.tensor([[0.1, -0.2], [0.1, -0.2]]))
    stereo = torch.tensor([[0.2, 0.4], [0.0, -0.4]])
    assert torch.allclose(match_channels(stereo, 1, "x"), torch.tensor([[0.1, 0.0]]))
    with pytest.raises(DataError, match="clip.mp4: audio has 6 channels"):
        match_channels(torch.zeros(6, 4), 2, "clip.mp4")


def test_rms_dbfs_of_tones_silence_and_noise() -> None:
    from toolkit.data.audio import DBFS_FLOOR, is_silent, rms_dbfs

    times = torch.arange(16000, dtype=torch.float64) / 16000
    tone = (0.5 * torch.sin(2 * math.pi * 440 * times)).to(torch.float32).expand(2, -1)
    assert rms_dbfs(tone) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)  # -9.03 dBFS
    assert rms_dbfs(torch.zeros(2, 16000)) == DBFS_FLOOR
    hiss = 1e-4 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    assert rms_dbfs(hiss) == pytest.approx(-80.0, abs=0.5)
    assert is_silent(rms_dbfs(hiss)) and is_silent(DBFS_FLOOR) and not is_silent(rms_dbfs(tone))
