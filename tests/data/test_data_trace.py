"""With verbose on, the data layer records its scan, skips, loads and cache lookups."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from toolkit.data.cache import LatentCache
from toolkit.data.dataset import MediaDataset
from toolkit.trace import TraceConfig, init_tracer, reset_tracer


def test_scan_skip_load_and_cache_are_traced(silent_clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(silent_clip, folder / "silent.mp4")
    (folder / "silent.txt").write_text("a silent clip")
    (folder / "broken.mp4").write_bytes(b"\x00\x01" * 500)
    (folder / "broken.txt").write_text("broken")
    trace_dir = tmp_path / "trace"
    init_tracer(TraceConfig(enabled=True, output_dir=trace_dir, console=False, heartbeat_s=0), is_main_process=True)
    try:
        dataset = MediaDataset(folder, num_frames=9, resolutions=[64], missing_audio="silence", on_corrupt="skip")
        dataset[0]
        cache = LatentCache(tmp_path / "cache")
        for _ in range(2):
            cache.get_or_compute(folder / "silent.mp4", {"encoder": "vae"}, lambda: {"latents": torch.ones(2)})
    finally:
        reset_tracer()
    records = [json.loads(line) for line in (trace_dir / "trace.jsonl").read_text().splitlines()]
    by_name = {}
    for record in records:
        by_name.setdefault((record["type"], record["name"]), []).append(record["fields"])
    [scan] = by_name[("event", "dataset_scan")]
    assert scan["items"] == 1 and scan["skipped"] == 1
    [skip] = by_name[("event", "dataset_skip")]
    assert skip["clip"].endswith("broken.mp4") and "cannot open as a video" in skip["reason"]
    [loaded] = by_name[("span_end", "load_media")]
    assert loaded["audio_is_silence"] is True and loaded["video"]["shape"] == [3, 9, 64, 64]
    assert [fields["outcome"] for fields in by_name[("event", "latent_cache")]] == ["miss", "hit"]
