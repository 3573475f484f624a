"""The latent-encoding monitor: fallback only on out-of-memory, the clear error when all fail, right numbers."""

from __future__ import annotations

import json
import logging
import time

import pytest
import torch

from toolkit.errors import DataError
from toolkit.monitoring.latents import (
    MB,
    LatentEncodingError,
    collect_encode_reports,
    encode_with_fallback,
    is_out_of_memory,
    simulate_out_of_memory,
)
from toolkit.trace import TraceConfig, get_tracer, init_tracer, reset_tracer


def frames(seed: int = 0, count: int = 9, size: int = 64) -> torch.Tensor:
    return torch.rand(1, 3, count, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def pooled(factor: int):
    """A stand-in encoder: average pooling by `factor` in space and time (keeps the first frame, as causal VAEs do)."""

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        first = pixels[:, :, :1]
        rest = torch.nn.functional.avg_pool3d(pixels[:, :, 1:], (factor, factor, factor))
        spatial_first = torch.nn.functional.avg_pool3d(first, (1, factor, factor))
        return torch.cat([spatial_first, rest], dim=2)

    return encode


def out_of_memory(message: str = "CUDA out of memory. Tried to allocate 2.00 GiB"):
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError(message)

    return encode


def test_injected_out_of_memory_in_direct_and_tiled_gives_cpu_latents_equal_to_direct(tiny_model):
    video = frames(1)
    with collect_encode_reports() as caching:
        direct = tiny_model.encode_images(video, clip="clip_a.mp4")
        with simulate_out_of_memory("direct", "tiled"):
            fallback = tiny_model.encode_images(video, clip="clip_a.mp4")
    assert direct.strategy == "direct"
    assert fallback.strategy == "cpu"
    torch.testing.assert_close(fallback.latents, direct.latents, rtol=1e-4, atol=1e-5)
    assert [name for name, _ in caching.reports[1].failures] == ["direct", "tiled"]
    assert all("out of memory" in message for _, message in caching.reports[1].failures)
    assert caching.clips_per_strategy == {"direct": 1, "cpu": 1}


def test_all_three_strategies_failing_raise_the_clear_error_and_give_no_latents(tiny_model):
    with collect_encode_reports() as caching, simulate_out_of_memory("direct", "tiled", "cpu"):
        with pytest.raises(LatentEncodingError) as raised:
            tiny_model.encode_images(frames(2), clip="data/clips/too_big.mp4")
    message = str(raised.value)
    assert isinstance(raised.value, DataError)
    assert "data/clips/too_big.mp4" in message
    assert "(1, 3, 9, 64, 64)" in message and "0.4 MB" in message
    for strategy in ("direct:", "tiled:", "cpu:"):
        assert strategy in message
    assert "resolution or num_frames" in message
    assert [name for name, _ in raised.value.failures] == ["direct", "tiled", "cpu"]
    assert caching.reports == []


def test_the_chain_moves_on_only_when_a_strategy_ran_out_of_memory():
    video = frames(3)
    calls = []

    def record(name, encode):
        def wrapped(pixels):
            calls.append(name)
            return encode(pixels)

        return name, wrapped

    latents, report = encode_with_fallback(
        "clip.mp4",
        video,
        [
            record("direct", out_of_memory()),
            record("tiled", lambda pixels: (_ for _ in ()).throw(RuntimeError("HIP out of memory on device 0"))),
            record("cpu", pooled(8)),
        ],
    )
    assert calls == ["direct", "tiled", "cpu"]
    assert report.strategy == "cpu"
    assert report.failures[0] == ("direct", "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert report.failures[1] == ("tiled", "RuntimeError: HIP out of memory on device 0")
    torch.testing.assert_close(latents, pooled(8)(video))

    calls.clear()

    def broken(pixels):
        raise ValueError("expected 3 channels, got 4")

    with pytest.raises(ValueError, match="expected 3 channels"):
        encode_with_fallback("clip.mp4", video, [record("direct", broken), record("cpu", pooled(8))])
    assert calls == ["direct"]


def test_out_of_memory_is_recognised_on_every_device():
    assert is_out_of_memory(torch.OutOfMemoryError("anything"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("HIP out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())  # numpy and Python on the CPU
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only what allocators raise
    assert not is_out_of_memory(RuntimeError("Storage size calculation overflowed with sizes=[1, 2]"))


def _absurd_cpu_allocation(pixels: torch.Tensor) -> torch.Tensor:
    """Asks torch's CPU allocator for 4 EiB: fails at once, with the RuntimeError a real CPU OOM raises."""
    return torch.empty(2**62, dtype=torch.uint8)


def test_a_real_cpu_allocation_failure_falls_back_to_the_next_strategy():
    with pytest.raises(RuntimeError) as raised:
        _absurd_cpu_allocation(torch.zeros(1))
    assert type(raised.value) is RuntimeError and "DefaultCPUAllocator" in str(raised.value)
    assert is_out_of_memory(raised.value)

    video = frames(5)
    latents, report = encode_with_fallback("big.mp4", video, [("direct", _absurd_cpu_allocation), ("cpu", pooled(8))])
    assert report.strategy == "cpu"
    assert report.failures[0][0] == "direct"
    assert report.failures[0][1].startswith("RuntimeError: ") and "can't allocate memory" in report.failures[0][1]
    torch.testing.assert_close(latents, pooled(8)(video))


def test_the_reports_numbers_match_the_vae_and_the_tensors(tiny_model):
    video = frames(4, count=17, size=64)
    with collect_encode_reports() as caching:
        result = tiny_model.encode_images(video, clip="clip_b.mp4")
    (report,) = caching.reports
    vae = tiny_model.vae
    latents = result.latents
    assert report.strategy == "direct" and report.failures == []
    assert report.spatial_compression == vae.spatial_compression_ratio == 8
    assert report.temporal_compression == vae.temporal_compression_ratio == 8
    assert report.spatial_area_compression == 64
    assert report.input_shape == (1, 3, 17, 64, 64)
    assert report.latent_shape == tuple(latents.shape) == (1, 4, 3, 8, 8)
    assert report.latent_elements == latents.numel() == 768
    assert report.latent_mb == pytest.approx(latents.numel() * latents.element_size() / MB)
    assert report.input_mb == pytest.approx(video.numel() * 4 / MB)
    assert (report.latent_dtype, report.latent_device) == ("torch.float32", "cpu")
    assert report.seconds > 0 and report.total_seconds >= report.seconds
    assert report.frames == 17
    assert report.frames_per_second == pytest.approx(17 / report.seconds)
    assert report.mb_per_second == pytest.approx(report.input_mb / report.seconds)
    before, after = report.memory_before, report.memory_after
    assert 0 <= before.at_s <= after.at_s <= report.total_seconds
    assert before.rss_mb > 0 and after.ram_total_mb > after.ram_available_mb > 0
    assert report.memory_change["rss_mb"] == pytest.approx(after.rss_mb - before.rss_mb)
    peak_rss, peak_at = report.peaks["rss_mb"]
    # A reading's time, or None when the kernel's peak RSS rose between two readings.
    assert peak_rss >= max(before.rss_mb, after.rss_mb) and (peak_at is None or 0 <= peak_at <= report.total_seconds)
    assert report.efficiency["latent_to_input_size"] == pytest.approx(report.latent_mb / report.input_mb)


def test_caching_report_counts_strategies_and_names_the_slowest_and_largest():
    def slow(seconds):
        def encode(pixels):
            time.sleep(seconds)
            return pooled(8)(pixels)

        return encode

    with collect_encode_reports() as caching:
        encode_with_fallback("small.mp4", frames(5, size=32), [("direct", slow(0.0))])
        encode_with_fallback("large.mp4", frames(6, size=128), [("direct", slow(0.0))])
        encode_with_fallback(
            "slow.mp4", frames(7, size=64), [("direct", out_of_memory()), ("tiled", slow(0.05))]
        )
    assert caching.clips_per_strategy == {"direct": 2, "tiled": 1}
    assert [r.clip for r in caching.slowest()][0] == "slow.mp4"
    assert [r.clip for r in caching.largest()] == ["large.mp4", "slow.mp4", "small.mp4"]
    assert caching.peak("rss_mb")[0] == max(r.peaks["rss_mb"][0] for r in caching.reports)
    summary = caching.summary()
    assert summary.startswith("Latent encoding: 3 clips in ")
    assert "(direct 2, tiled 1)" in summary
    assert "fell back: slow.mp4: direct ran out of memory, encoded tiled" in summary
    assert "slowest: slow.mp4" in summary and "largest: large.mp4" in summary


def test_verbose_prints_a_summary_per_clip_and_traces_every_measurement(tmp_path, caplog):
    reset_tracer()
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    # A configured LogManager (an earlier test's run) stops propagation at the project's root
    # logger, so listen on that logger itself rather than on Python's root.
    project_root = logging.getLogger("ltx2_trace")
    project_root.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="ltx2_trace"):
            encode_with_fallback("clip_c.mp4", frames(8), [("direct", out_of_memory()), ("tiled", pooled(8))])
    finally:
        project_root.removeHandler(caplog.handler)
        reset_tracer()
    # The same record may arrive twice (this handler, and Python's root when propagation is on).
    (summary,) = {r.getMessage() for r in caplog.records if r.getMessage().startswith("latents clip_c.mp4")}
    assert "tiled after direct ran out of memory" in summary
    assert "(1, 3, 9, 64, 64) -> (1, 3, 2, 8, 8)" in summary and "spatial 8x, temporal 8x" in summary
    records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    (fallback,) = [r for r in records if r["name"] == "latent_encode_fallback"]
    assert fallback["fields"]["strategy"] == "direct"
    (encode,) = [r for r in records if r["name"] == "latent_encode"]
    fields = encode["fields"]
    assert fields["clip"] == "clip_c.mp4" and fields["strategy"] == "tiled"
    assert fields["latent_shape"] == [1, 3, 2, 8, 8] and fields["latent_elements"] == 384
    assert fields["spatial_compression"] == 8 and fields["temporal_compression"] == 8
    measured = ("memory_before", "memory_after", "memory_change_mb", "peak_mb", "frames_per_second", "mb_per_second")
    for key in (*measured, "efficiency"):
        assert key in fields


def test_quiet_by_default(caplog):
    with caplog.at_level(logging.INFO):
        encode_with_fallback("clip_d.mp4", frames(9), [("direct", pooled(8))])
    assert not [r for r in caplog.records if r.getMessage().startswith("latents ")]


def _encode_two_clips_and_publish(caplog) -> None:
    project_root = logging.getLogger("ltx2_trace")
    project_root.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="ltx2_trace"), collect_encode_reports() as caching:
            encode_with_fallback("clip_e.mp4", frames(10), [("direct", pooled(8))])
            encode_with_fallback("clip_f.mp4", frames(11), [("direct", pooled(8))])
            caching.publish(logging.getLogger("ltx2_trace.test_latents"), get_tracer())
    finally:
        project_root.removeHandler(caplog.handler)


@pytest.mark.parametrize("trace", ["off", "console", "files only"])
def test_each_encode_and_the_caching_report_are_printed_once(tmp_path, caplog, capsys, trace):
    """The rule: a traced event is printed by the trace's console; the logger prints it otherwise."""
    reset_tracer()
    if trace != "off":
        init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=trace == "console", heartbeat_s=0))
    try:
        _encode_two_clips_and_publish(caplog)
    finally:
        reset_tracer()
    stdout = capsys.readouterr().out
    logged = [record.getMessage() for record in caplog.records]
    for clip in ("clip_e.mp4", "clip_f.mp4"):
        on_stdout = sum(f"latents {clip}" in line for line in stdout.splitlines())
        by_logger = len({message for message in logged if message.startswith(f"latents {clip}")})
        # per clip: only while tracing, once
        assert (on_stdout, by_logger) == {"off": (0, 0), "console": (1, 0), "files only": (0, 1)}[trace]
    report_on_stdout = sum("latent_caching_report" in line for line in stdout.splitlines())
    report_by_logger = len({message for message in logged if message.startswith("Latent encoding: 2 clips")})
    assert (report_on_stdout, report_by_logger) == {"off": (0, 1), "console": (1, 0), "files only": (0, 1)}[trace]
