"""Audio waveform helpers in plain torch (torchaudio has no build for our torch).

`resample_audio` is band-limited (windowed-sinc polyphase, the method and
defaults torchaudio uses), so resampling neither shifts a tone's pitch nor
folds content above the new Nyquist frequency back into the audible range.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from toolkit.errors import DataError

# A track whose RMS level is below this is treated as silent. Speech and music sit around -30..-10 dBFS
# and the noise floor of a quiet room recording around -60..-50; below -60 dBFS nothing a listener (or the
# audio VAE) can use is left. An all-zero track is -inf dBFS, reported as the floor.
SILENCE_THRESHOLD_DBFS = -60.0
DBFS_FLOOR = -120.0

# Zero crossings of the sinc on each side, and the cutoff as a fraction of the
# lower Nyquist frequency: torchaudio's defaults, a good quality/speed balance.
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99


def resample_audio(waveform: torch.Tensor, source_rate: int, target_rate: int) -> torch.Tensor:
    """Resample float `waveform` (..., samples) from `source_rate` to `target_rate` Hz."""
    if source_rate <= 0 or target_rate <= 0:
        raise DataError(f"cannot resample audio from {source_rate} Hz to {target_rate} Hz; rates must be positive")
    if source_rate == target_rate:
        return waveform
    common = math.gcd(int(source_rate), int(target_rate))
    source_step, target_step = int(source_rate) // common, int(target_rate) // common
    kernel, width = _sinc_kernel(source_step, target_step, waveform.dtype)
    leading_shape, length = waveform.shape[:-1], waveform.shape[-1]
    flat = F.pad(waveform.reshape(-1, 1, length), (width, width + source_step))
    # Each output channel of the conv is one phase of the polyphase filter bank;
    # interleaving the phases gives the output samples in order.
    phases = F.conv1d(flat, kernel.to(waveform.device), stride=source_step)
    resampled = phases.transpose(1, 2).reshape(flat.shape[0], -1)
    target_length = math.ceil(target_step * length / source_step)
    return resampled[:, :target_length].reshape(*leading_shape, -1)


def rms_dbfs(waveform: torch.Tensor) -> float:
    """The RMS level of a float waveform in [-1, 1], in dB relative to full scale; DBFS_FLOOR for silence."""
    if waveform.numel() == 0:
        return DBFS_FLOOR
    rms = float(waveform.double().pow(2).mean().sqrt())
    return max(DBFS_FLOOR, 20.0 * math.log10(rms)) if rms > 0.0 else DBFS_FLOOR


def is_silent(level_dbfs: float) -> bool:
    return level_dbfs < SILENCE_THRESHOLD_DBFS


def fit_length(waveform: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Cut `waveform` (..., samples) to `num_samples`, or pad the end with silence."""
    length = waveform.shape[-1]
    if length >= num_samples:
        return waveform[..., :num_samples]
    return F.pad(waveform, (0, num_samples - length))


def stretch_audio(waveform: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Stretch or squeeze `waveform` (channels, samples) to `num_samples` by linear interpolation.

    The pitch moves with the speed, as in ai-toolkit when `shrink_video_to_frames`
    plays a whole clip's frames at another rate.
    """
    if waveform.shape[-1] == num_samples:
        return waveform
    stretched = F.interpolate(waveform.unsqueeze(0), size=num_samples, mode="linear", align_corners=False)
    return stretched.squeeze(0)


def match_channels(waveform: torch.Tensor, channels: int, source: str) -> torch.Tensor:
    """Mono is copied to every channel; stereo is averaged down to mono.

    Decoding already downmixes more than two channels to stereo (toolkit/data/media.py,
    FFmpeg's standard matrix); a waveform of more channels is an error naming `source`.
    """
    have = waveform.shape[0]
    if have == channels:
        return waveform
    if have == 1:
        return waveform.expand(channels, -1).clone()
    if have == 2 and channels == 1:
        return waveform.mean(dim=0, keepdim=True)
    raise DataError(
        f"{source}: audio has {have} channels where mono or stereo was expected; convert the file to stereo, "
        "or set audio: false in the dataset config to train the video only"
    )


def _sinc_kernel(source_step: int, target_step: int, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """Hann-windowed sinc filters, one per output phase: (target_step, 1, taps)."""
    cutoff = min(source_step, target_step) * _ROLLOFF
    width = math.ceil(_LOWPASS_FILTER_WIDTH * source_step / cutoff)
    input_times = torch.arange(-width, width + source_step, dtype=torch.float64)[None, None] / source_step
    output_offsets = torch.arange(0, -target_step, -1, dtype=torch.float64)[:, None, None] / target_step
    times = ((output_offsets + input_times) * cutoff).clamp(-_LOWPASS_FILTER_WIDTH, _LOWPASS_FILTER_WIDTH)
    window = torch.cos(times * math.pi / _LOWPASS_FILTER_WIDTH / 2) ** 2
    times = times * math.pi
    sinc = torch.where(times == 0, torch.ones_like(times), torch.sin(times) / times)
    return (sinc * window * (cutoff / source_step)).to(dtype), width
