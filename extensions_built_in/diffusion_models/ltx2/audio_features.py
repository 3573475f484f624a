"""Waveform to the log-mel spectrogram LTX-2's audio VAE encodes.

torchaudio has no build for this torch, so the STFT is torch's and the mel
filters are transformers' (`audio_utils.mel_filter_bank`, Slaney scale as in
the LTX-2 reference preprocessing).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

N_FFT = 1024
LOG_FLOOR = 1e-5


@functools.lru_cache(maxsize=8)
def _mel_filters(sample_rate: int, mel_bins: int) -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    filters = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=mel_bins,
        min_frequency=0.0,
        max_frequency=sample_rate / 2,
        sampling_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(filters).float()  # (freq_bins, mel_bins)


def stereo(waveform: torch.Tensor) -> torch.Tensor:
    """(B, channels, samples) to two channels: mono is duplicated, extra channels dropped."""
    if waveform.shape[1] == 1:
        return waveform.repeat(1, 2, 1)
    return waveform[:, :2]


def log_mel(waveform: torch.Tensor, sample_rate: int, mel_bins: int, hop_length: int) -> torch.Tensor:
    """(B, channels, samples) in [-1, 1] to (B, channels, frames, mel_bins) log-mel."""
    batch, channels, samples = waveform.shape
    flat = waveform.reshape(batch * channels, samples).float()
    # Causal framing: pad on the left only, so frame k sees samples up to k * hop.
    flat = F.pad(flat, (N_FFT - hop_length, 0))
    window = torch.hann_window(N_FFT, device=flat.device)
    spectrum = torch.stft(flat, N_FFT, hop_length=hop_length, window=window, center=False, return_complex=True)
    magnitude = spectrum.abs()  # (B*ch, freq, frames)
    mel = torch.matmul(_mel_filters(sample_rate, mel_bins).T.to(flat.device), magnitude)
    log_spec = torch.log(torch.clamp(mel, min=LOG_FLOOR))
    return log_spec.transpose(1, 2).reshape(batch, channels, -1, mel_bins)
