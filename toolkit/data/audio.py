"""Audio waveform helpers on tensors (torchaudio has no build for our torch).

Audio read from a file is resampled while it is decoded (toolkit/data/media.py, PyAV's
`AudioResampler`). `resample_audio` is for a waveform that is already a tensor: the model's
`encode_audio` given audio at another rate than its audio VAE's. Both go through
libswresample, which is band-limited: resampling neither shifts a tone's pitch nor folds
content above the new Nyquist frequency back into the audible range.
"""

from __future__ import annotations

import math

import av
import numpy as np
import torch
import torch.nn.functional as F

from toolkit.errors import DataError

# A track whose RMS level is below this is treated as silent. Speech and music sit around -30..-10 dBFS
# and the noise floor of a quiet room recording around -60..-50; below -60 dBFS nothing a listener (or the
# audio VAE) can use is left. An all-zero track is -inf dBFS, reported as the floor.
SILENCE_THRESHOLD_DBFS = -60.0
DBFS_FLOOR = -120.0


def resample_audio(waveform: torch.Tensor, source_rate: int, target_rate: int) -> torch.Tensor:
    """Resample float `waveform` (..., samples) from `source_rate` to `target_rate` Hz with libswresample.

    Each channel is resampled on its own (as mono) on the CPU, then returned on the waveform's device and
    dtype, `ceil(samples * target_rate / source_rate)` samples long.
    """
    if source_rate <= 0 or target_rate <= 0:
        raise DataError(f"cannot resample audio from {source_rate} Hz to {target_rate} Hz; rates must be positive")
    if source_rate == target_rate:
        return waveform
    leading_shape, length = waveform.shape[:-1], waveform.shape[-1]
    target_length = math.ceil(target_rate * length / source_rate)
    rows = waveform.detach().reshape(-1, length).to("cpu", torch.float32).numpy()
    resampled = np.stack([_resample_row(row, int(source_rate), int(target_rate), target_length) for row in rows])
    return torch.from_numpy(resampled).to(waveform.device, waveform.dtype).reshape(*leading_shape, target_length)


def _resample_row(row: np.ndarray, source_rate: int, target_rate: int, target_length: int) -> np.ndarray:
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=target_rate)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(row)[None], format="fltp", layout="mono")
    frame.sample_rate = source_rate
    chunks = [out.to_ndarray()[0] for out in (*resampler.resample(frame), *resampler.resample(None))]
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    # libswresample rounds the length its own way (one sample either side); a waveform too short for its
    # filter comes back (nearly) empty, which is an error rather than silence.
    if samples.shape[0] < target_length - 1:
        raise DataError(
            f"cannot resample {row.shape[0]} samples from {source_rate} Hz to {target_rate} Hz: too short for the "
            f"resampler's filter (it gave {samples.shape[0]} of {target_length} samples)"
        )
    return np.pad(samples[:target_length], (0, max(0, target_length - samples.shape[0])))


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

