"""Latent and text-embedding caches: reuse, invalidation, stale entries, atomic writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import toolkit.data.cache as cache_module
from toolkit.data.cache import LatentCache, TextEmbeddingCache
from toolkit.errors import DataError

SETTINGS = {"num_frames": 9, "bucket": (64, 64), "fps": 24.0, "sample_rate": 16000, "encoder": "tiny-ltx2-vae@abc"}


class CountingEncoder:
    """A compute_fn that records its calls and returns distinct latents each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, torch.Tensor]:
        self.calls += 1
        latents = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * self.calls
        # Views of one tensor, as a VAE's mean/logvar split would give.
        return {"video_latents": latents[0], "audio_latents": latents[1]}


@pytest.fixture()
def clip(demo_folder: Path, tmp_path: Path) -> Path:
    path = tmp_path / "clips" / "demo_00.mp4"
    path.parent.mkdir()
    shutil.copy(demo_folder / "demo_00.mp4", path)
    return path


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_second_lookup_is_a_hit_with_equal_tensors(clip: Path, tmp_path: Path) -> None:
    cache = LatentCache(tmp_path / "cache")
    encode = CountingEncoder()
    first = cache.get_or_compute(clip, SETTINGS, encode)
    second = cache.get_or_compute(clip, dict(SETTINGS), encode)
    assert encode.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    assert set(second) == {"video_latents", "audio_latents"}
    assert torch.equal(second["video_latents"], first["video_latents"])
    assert torch.equal(second["audio_latents"], torch.arange(12, 24, dtype=torch.float32).reshape(3, 4))
    # A fresh cache object on the same folder (next run) also hits.
    assert LatentCache(tmp_path / "cache").get_or_compute(clip, SETTINGS, encode)["audio_latents"].sum() == 210
    assert encode.calls == 1
    [name] = entries(tmp_path / "cache")
    assert name.startswith("demo_00_") and name.endswith(".safetensors") and len(name) == len("demo_00_") + 16 + 12
    with safe_open(str(tmp_path / "cache" / name), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["source"] == str(clip.resolve()) and '"encoder": "tiny-ltx2-vae@abc"' in metadata["settings"]


def test_changed_setting_recomputes_and_removes_stale_entry(clip: Path, tmp_path: Path) -> None:
    cache = LatentCache(tmp_path / "cache")
    encode = CountingEncoder()
    cache.get_or_compute(clip, SETTINGS, encode)
    old_entry = cache.entry_path(clip, SETTINGS)
    for change in ({"bucket": (32, 32)}, {"encoder": "tiny-ltx2-vae@def"}, {"num_frames": 17}):
        settings = {**SETTINGS, **change}
        result = cache.get_or_compute(clip, settings, encode)
        assert result["video_latents"][0, 1].item() == encode.calls  # the fresh computation, not the old entry
        assert entries(tmp_path / "cache") == [cache.entry_path(clip, settings).name]
    assert encode.calls == 4 and cache.hits == 0 and not old_entry.exists()


def test_touched_or_modified_file_recomputes(clip: Path, tmp_path: Path) -> None:
    cache = LatentCache(tmp_path / "cache")
    encode = CountingEncoder()
    cache.get_or_compute(clip, SETTINGS, encode)
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    cache.get_or_compute(clip, SETTINGS, encode)
    assert encode.calls == 2
    # Same size and mtime, different bytes (a copy that preserved the timestamp): the content hash catches it (in
    # the next run: a cache hashes a file once per stat, and a write within the same clock tick may keep the ctime).
    stat = clip.stat()
    data = bytearray(clip.read_bytes())
    data[-10] ^= 0xFF
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    LatentCache(tmp_path / "cache").get_or_compute(clip, SETTINGS, encode)
    assert encode.calls == 3 and len(entries(tmp_path / "cache")) == 1


def test_a_files_ends_are_hashed_once_per_cache_until_it_changes(clip: Path, tmp_path: Path, monkeypatch) -> None:
    hashed = []
    ends_digest = cache_module._ends_digest
    monkeypatch.setattr(cache_module, "_ends_digest", lambda path, size: hashed.append(path) or ends_digest(path, size))
    cache = LatentCache(tmp_path / "cache")
    entry = cache.entry_path(clip, SETTINGS)  # the batching encoder's look before it computes
    cache.get_or_compute(clip, SETTINGS, CountingEncoder())
    cache.get_or_compute(clip, SETTINGS, CountingEncoder(), variant="flip_x")
    assert hashed == [clip.resolve()] and entry.is_file()
    assert LatentCache(tmp_path / "cache").entry_path(clip, SETTINGS) == entry and len(hashed) == 2  # a new run
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache.entry_path(clip, SETTINGS) != entry and len(hashed) == 3


def test_other_file_with_same_stem_keeps_its_entry(clip: Path, tmp_path: Path) -> None:
    twin = tmp_path / "elsewhere" / "demo_00.mp4"
    twin.parent.mkdir()
    shutil.copy(clip, twin)
    cache = LatentCache(tmp_path / "cache")
    encode = CountingEncoder()
    cache.get_or_compute(clip, SETTINGS, encode)
    cache.get_or_compute(twin, SETTINGS, encode)
    assert encode.calls == 2 and len(entries(tmp_path / "cache")) == 2


def test_failed_write_leaves_no_file(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_half_then_fail(tensors: dict, path: Path, metadata: dict) -> None:
        Path(path).write_bytes(b"\x00" * 100)
        raise OSError(28, "No space left on device")

    cache = LatentCache(tmp_path / "cache")
    monkeypatch.setattr(cache_module, "write_safetensors", write_half_then_fail)
    with pytest.raises(DataError) as raised:
        cache.get_or_compute(clip, SETTINGS, CountingEncoder())
    assert "No space left" in str(raised.value) and str(tmp_path / "cache") in str(raised.value)
    assert entries(tmp_path / "cache") == []


def test_unreadable_entry_is_recomputed(clip: Path, tmp_path: Path) -> None:
    cache = LatentCache(tmp_path / "cache")
    encode = CountingEncoder()
    cache.get_or_compute(clip, SETTINGS, encode)
    cache.entry_path(clip, SETTINGS).write_bytes(b"garbage")
    assert cache.get_or_compute(clip, SETTINGS, encode)["video_latents"][0, 1].item() == 2
    assert encode.calls == 2 and cache.get_or_compute(clip, SETTINGS, encode)["video_latents"][0, 1].item() == 2


def test_bad_compute_result_and_settings_raise(clip: Path, tmp_path: Path) -> None:
    cache = LatentCache(tmp_path / "cache")
    with pytest.raises(DataError, match="non-empty dict of tensors"):
        cache.get_or_compute(clip, SETTINGS, lambda: torch.zeros(2))  # type: ignore[arg-type, return-value]
    with pytest.raises(DataError, match="cannot be part of a cache key"):
        cache.get_or_compute(clip, {"encoder": object()}, CountingEncoder())
    assert entries(tmp_path / "cache") == []


def test_text_embeddings_keyed_by_caption_and_encoder(tmp_path: Path) -> None:
    cache = TextEmbeddingCache(tmp_path / "text")
    encode = CountingEncoder()
    gemma = {"encoder": "gemma3-tiny@123", "max_sequence_length": 128}
    cache.get_or_compute("a red square", gemma, encode)
    cache.get_or_compute("a red square", gemma, encode)
    assert (encode.calls, cache.hits, cache.misses) == (1, 1, 1)
    cache.get_or_compute("a blue circle", gemma, encode)
    cache.get_or_compute("a red square", {**gemma, "encoder": "gemma3-tiny@456"}, encode)
    assert encode.calls == 3 and len(entries(tmp_path / "text")) == 3
    with safe_open(str(cache.entry_path("a blue circle", gemma)), framework="pt") as handle:
        assert handle.metadata()["caption"] == "a blue circle"
