"""Decoding: frame counts, sizes, frame-rate resampling, audio, images, broken files, demo set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from toolkit.data.audio import rms_dbfs
from toolkit.data.demo_clips import make_demo_clips
from toolkit.data.media import AudioTrack, probe_media, read_video, source_frame_indices
from toolkit.data.video_writer import write_video
from toolkit.errors import DataError

REPO_DEMO_CLIPS = Path(__file__).resolve().parents[2] / "data" / "demo_clips"


def _red_centroid_x(frame: torch.Tensor) -> float:
    red = (frame[..., 0] > 150) & (frame[..., 1] < 100) & (frame[..., 2] < 100)
    return red.nonzero()[:, 1].float().mean().item()


def test_reads_requested_frames_with_size_fps_and_audio(demo_folder: Path) -> None:
    clip = read_video(demo_folder / "demo_00.mp4", num_frames=9)
    assert clip.frames.shape == (9, 64, 64, 3) and clip.frames.dtype == torch.uint8
    assert clip.fps == 24.0
    assert clip.duration_s == pytest.approx(9 / 24)
    assert clip.audio is not None and clip.audio.sample_rate == 16000
    assert clip.audio.waveform.shape == (1, round(9 / 24 * 16000))
    assert clip.audio.waveform.dtype == torch.float32
    assert 0.45 < clip.audio.waveform.abs().max().item() <= 1.0


def test_frames_show_the_motion_from_the_start(demo_folder: Path) -> None:
    # demo_00 is a red square moving left to right across 17 frames.
    clip = read_video(demo_folder / "demo_00.mp4", num_frames=17)
    positions = [_red_centroid_x(frame) for frame in clip.frames]
    assert positions[0] < 20 and positions[-1] > 44
    assert all(later > earlier for earlier, later in zip(positions, positions[1:]))


def test_downsampled_fps_takes_every_other_source_frame(clip_30fps_44k_stereo: Path) -> None:
    native = read_video(clip_30fps_44k_stereo, num_frames=20)
    halved = read_video(clip_30fps_44k_stereo, num_frames=10, fps=15)
    assert native.fps == 30.0 and halved.fps == 15.0
    assert halved.frames.shape == (10, 96, 64, 3)
    assert torch.equal(halved.frames, native.frames[0::2])
    assert halved.duration_s == pytest.approx(10 / 15)


def test_upsampled_fps_repeats_source_frames(demo_folder: Path) -> None:
    native = read_video(demo_folder / "demo_01.mp4", num_frames=17)
    faster = read_video(demo_folder / "demo_01.mp4", num_frames=20, fps=30)
    expected = source_frame_indices(20, 24.0, 30.0)
    assert expected[:6] == [0, 0, 1, 2, 3, 4]
    assert torch.equal(faster.frames, native.frames[expected])


def test_clip_shorter_than_num_frames_names_path_and_counts(demo_folder: Path) -> None:
    path = demo_folder / "demo_02.mp4"
    with pytest.raises(DataError) as raised:
        read_video(path, num_frames=25)
    message = str(raised.value)
    assert str(path) in message and "17 frames" in message and "num_frames=25" in message
    assert "lower num_frames" in message


def test_resampled_fps_counts_source_frames_needed(demo_folder: Path) -> None:
    # 9 frames at 12 fps need source frame 16 (the 17th): fits; 10 frames need 18: too short.
    assert read_video(demo_folder / "demo_02.mp4", num_frames=9, fps=12).frames.shape[0] == 9
    with pytest.raises(DataError, match="needs 19 source frames"):
        read_video(demo_folder / "demo_02.mp4", num_frames=10, fps=12)


def test_stereo_audio_keeps_channels_and_rate(clip_30fps_44k_stereo: Path) -> None:
    clip = read_video(clip_30fps_44k_stereo, num_frames=20)
    assert clip.audio is not None
    assert clip.audio.sample_rate == 44100
    assert clip.audio.waveform.shape[0] == 2
    # Exactly the span of the 20 frames: nothing read past the clip.
    assert clip.audio.waveform.shape[1] == round(20 / 30 * 44100)


def test_clip_without_audio_has_none(silent_clip: Path) -> None:
    assert read_video(silent_clip, num_frames=17).audio is None
    assert probe_media(silent_clip).has_audio is False


def test_probe_reports_headers(clip_30fps_44k_stereo: Path) -> None:
    info = probe_media(clip_30fps_44k_stereo)
    assert (info.height, info.width, info.fps, info.frame_count) == (96, 64, 30.0, 20)
    assert info.has_audio and not info.is_image


def test_image_is_one_frame_clip(tmp_path: Path) -> None:
    pixels = np.zeros((40, 70, 3), dtype=np.uint8)
    pixels[:, :35] = (255, 0, 0)
    Image.fromarray(pixels).save(tmp_path / "still.png")
    clip = read_video(tmp_path / "still.png", num_frames=17, fps=12)
    assert clip.frames.shape == (1, 40, 70, 3)
    assert clip.frames[0, 0, 0].tolist() == [255, 0, 0] and clip.frames[0, 0, 69].tolist() == [0, 0, 0]
    assert clip.fps == 12.0 and clip.audio is None
    info = probe_media(tmp_path / "still.png")
    assert info.is_image and (info.height, info.width) == (40, 70)


def test_random_bytes_named_mp4_raise_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for read in (lambda: read_video(path, 9), lambda: probe_media(path)):
        with pytest.raises(DataError) as raised:
            read()
        assert str(path) in str(raised.value) and "cannot open as a video" in str(raised.value)


def test_broken_image_and_missing_file_raise(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="cannot read as an image"):
        read_video(path, 1)
    with pytest.raises(DataError, match="file not found"):
        read_video(tmp_path / "absent.mp4", 9)


def test_demo_generator_is_deterministic_and_matches_committed_set(tmp_path: Path) -> None:
    clips = make_demo_clips(tmp_path)
    assert [clip.caption for clip in clips] == [
        "a red square moving left to right, with a 440 Hz tone",
        "a blue circle moving right to left, with a 660 Hz tone",
        "a green triangle moving top to bottom, with a 550 Hz tone",
        "a yellow diamond moving bottom to top, with a 330 Hz tone",
    ]
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == sorted(path.name for path in REPO_DEMO_CLIPS.iterdir())
    # libx264's bytes depend on the CPU's code path (AVX-512 vs AVX2), so the files are compared
    # after decoding: the same frames and the same audio, within what a lossy codec allows.
    for name in names:
        if name.endswith(".txt"):
            assert (tmp_path / name).read_text() == (REPO_DEMO_CLIPS / name).read_text(), name
        else:
            assert_same_decoded_clip(tmp_path / name, REPO_DEMO_CLIPS / name)
    assert sum(path.stat().st_size for path in REPO_DEMO_CLIPS.iterdir()) < 1_000_000


def assert_same_decoded_clip(made: Path, committed: Path) -> None:
    """Every frame within 1 grey level on average (no pixel off by more than 8), audio within 1e-3."""
    made_info, committed_info = probe_media(made), probe_media(committed)
    assert (made_info.frame_count, made_info.fps, made_info.has_audio) == (
        committed_info.frame_count,
        committed_info.fps,
        committed_info.has_audio,
    ), made.name
    ours = read_video(made, num_frames=made_info.frame_count)
    theirs = read_video(committed, num_frames=committed_info.frame_count)
    assert ours.frames.shape == theirs.frames.shape, made.name
    difference = (ours.frames.float() - theirs.frames.float()).abs()
    assert difference.mean().item() < 1.0 and difference.max().item() <= 8, (made.name, difference.max().item())
    assert ours.audio is not None and theirs.audio is not None, made.name
    assert ours.audio.sample_rate == theirs.audio.sample_rate
    assert ours.audio.waveform.shape == theirs.audio.waveform.shape, made.name
    assert torch.allclose(ours.audio.waveform, theirs.audio.waveform, atol=1e-3), made.name


def test_decoded_comparison_tells_a_changed_clip_apart(tmp_path: Path) -> None:
    """The check above is a real one: a clip whose shape or tone differs does not pass it."""
    make_demo_clips(tmp_path / "shifted", count=1, seed=1)  # other background shade and offset
    with pytest.raises(AssertionError):
        assert_same_decoded_clip(tmp_path / "shifted" / "demo_00.mp4", REPO_DEMO_CLIPS / "demo_00.mp4")
    make_demo_clips(tmp_path / "other", count=2)
    with pytest.raises(AssertionError):
        assert_same_decoded_clip(tmp_path / "other" / "demo_01.mp4", REPO_DEMO_CLIPS / "demo_00.mp4")


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_other_containers_decode_the_same(demo_folder: Path, tmp_path: Path, suffix: str) -> None:
    source = read_video(demo_folder / "demo_03.mp4", num_frames=17)
    assert source.audio is not None
    path = write_video(tmp_path / f"clip{suffix}", source.frames, source.fps, source.audio)
    again = read_video(path, num_frames=17)
    assert again.frames.shape == source.frames.shape and again.fps == 24.0
    # Re-encoding is lossy; the frames stay close.
    assert (again.frames.float() - source.frames.float()).abs().mean().item() < 3.0
    assert again.audio is not None and again.audio.waveform.shape == source.audio.waveform.shape


def test_audio_is_resampled_while_decoding(tmp_path: Path) -> None:
    """libswresample (PyAV's AudioResampler) takes 48 kHz to 16 kHz as it decodes: a 440 Hz tone keeps its pitch
    and level, a 10 kHz one (above the new 8 kHz Nyquist) is filtered out instead of folding back to 6 kHz."""
    from tests.data.test_data_audio import dominant_frequency, tone

    seconds, rate = 0.5, 48000
    path = write_video(
        tmp_path / "tones.mp4", torch.zeros(12, 32, 32, 3, dtype=torch.uint8), 24,
        AudioTrack(torch.stack([tone(440, rate, seconds), tone(10_000, rate, seconds)]), rate),
    )
    native = read_video(path, num_frames=12).audio
    resampled = read_video(path, num_frames=12, audio_sample_rate=16000).audio
    spread = read_video(path, num_frames=6, spread=True, audio_sample_rate=16000).audio
    assert native is not None and resampled is not None and spread is not None
    assert (native.sample_rate, resampled.sample_rate, spread.sample_rate) == (48000, 16000, 16000)
    assert tuple(resampled.waveform.shape) == (2, 8000)
    assert dominant_frequency(resampled.waveform[0], 16000) == pytest.approx(440, abs=2)
    middle = slice(800, -800)  # away from the codec's start and end
    assert rms_dbfs(resampled.waveform[0, middle]) == pytest.approx(rms_dbfs(native.waveform[0, 2400:-2400]), abs=0.2)
    assert rms_dbfs(resampled.waveform[1, middle]) < rms_dbfs(native.waveform[1, 2400:-2400]) - 40
