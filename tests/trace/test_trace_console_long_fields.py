"""Long fields stay readable on the console (one line of at most LINE_LIMIT characters, tables line by line)
while trace.jsonl keeps them whole: the latent-cache settings and the memory plan, as a tiny run writes them."""

from __future__ import annotations

import json

import torch

from tests.conftest import DEMO_CLIPS, tiny_model_config
from toolkit.data.cache import LatentCache, settings_json
from toolkit.dry_run import memory_plan_report
from toolkit.trace import Lines, TraceConfig, init_tracer, reset_tracer
from toolkit.trace.sinks.console import LINE_LIMIT


def test_the_latent_cache_settings_and_the_plan_are_short_on_the_console_and_whole_in_the_jsonl(
    tiny_model, tmp_path, capsys, jsonl_reader
):
    clip = DEMO_CLIPS / "demo_00.mp4"
    settings = {  # what the trainer keys a clip's latents on (clip_encoding.ClipEncoder.settings)
        "frames": (3, 9, 64, 64),
        "bucket": (64, 64),
        "fps": 12.0,
        "sample_rate": 16000,
        "encoder": tiny_model.encoder_identity(),
        "frame_selection": "spread",
        "flip": [False, False],
    }
    plan = memory_plan_report(tiny_model_config()).splitlines()
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, heartbeat_s=0))
    try:
        LatentCache(tmp_path / "latent_cache").get_or_compute(clip, settings, lambda: {"latents": torch.ones(2)})
        tracer.event("memory_plan_table", plan=Lines(plan))  # as toolkit.dry_run.trace_memory_plan traces it
    finally:
        reset_tracer()
    lines = capsys.readouterr().out.splitlines()
    records = {record["name"]: record for record in jsonl_reader(tmp_path / "trace.jsonl")}

    (cache_line,) = [line for line in lines if line.startswith("[VERBOSE] latent_cache ")]
    whole = records["latent_cache"]["fields"]["settings"]
    assert whole == settings_json(settings, where=str(clip)) and len(whole) > 2 * LINE_LIMIT
    assert len(cache_line) <= LINE_LIMIT
    assert "outcome=miss" in cache_line and "settings={7 keys: bucket, encoder, flip, ...}" in cache_line

    assert records["memory_plan_table"]["fields"]["plan"] == plan
    start = lines.index("[VERBOSE] memory_plan_table")
    assert lines[start + 1 : start + 1 + len(plan)] == [f"[VERBOSE]   {row}" for row in plan]  # one line per row
    assert all(len(line) <= LINE_LIMIT for line in lines[: start + 1])
    assert json.loads(whole)["encoder"] == settings["encoder"]
    # the tiny model has no block of 1/8 GiB: the plan lists no "largest blocks" (no line that lists nothing)
    assert not any("Largest blocks in flight" in row for row in plan) and any(row.startswith("- The checkpoint's pages") for row in plan)
