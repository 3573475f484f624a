"""Console lines and heartbeat lines as a user sees them."""

from __future__ import annotations

import re
import time

import torch
from torch import nn

from toolkit.trace import TraceConfig, init_tracer, reset_tracer

# rss, then CUDA figures on a machine that has CUDA
MEMORY = r"rss=\d+\.\dMB(?: cuda=\d+\.\dMB cuda_peak=\d+\.\dMB)?"
HEARTBEAT_MEMORY = r"rss=\d+\.\dMB(?:, cuda=\d+\.\dMB, cuda_peak=\d+\.\dMB)?"
MEMORY_WITH_CHANGE = (
    r"rss=\d+\.\dMB \([+-]\d+\.\dMB\)(?: cuda=\d+\.\dMB \([+-]\d+\.\dMB\) cuda_peak=\d+\.\dMB)?"
)


def test_console_lines_are_prefixed_indented_and_compact(capsys):
    tracer = init_tracer(TraceConfig(enabled=True, heartbeat_s=0))
    with tracer.span("load_model", dtype=torch.float32):
        with tracer.span("load_model.transformer") as span:
            span.set(transformer=nn.Linear(100, 12))
        tracer.event("encode_images", latents=torch.arange(6.0).reshape(1, 2, 3), steps=1234)
    reset_tracer()
    lines = capsys.readouterr().out.splitlines()
    assert all(line.startswith("[VERBOSE] ") for line in lines)
    assert lines[0].startswith("[VERBOSE] trace_start ")
    assert re.fullmatch(r"\[VERBOSE\] load_model dtype=torch\.float32 " + MEMORY, lines[1])
    assert re.fullmatch(r"\[VERBOSE\]   load_model\.transformer " + MEMORY, lines[2])
    assert re.fullmatch(
        r"\[VERBOSE\]   load_model\.transformer done in \d\.\d{3}s transformer=Linear params=1,212 "
        r"trainable=1,212 dtype=torch\.float32 device=cpu " + MEMORY_WITH_CHANGE,
        lines[3],
    )
    assert lines[4] == (
        "[VERBOSE]   encode_images latents=[1, 2, 3] float32 cpu min=0 max=5 mean=2.5 steps=1,234"
    )
    assert lines[5].startswith("[VERBOSE] load_model done in ")
    assert len(lines) == 6


def test_console_off_prints_nothing(tmp_path, capsys):
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    with tracer.span("load_model"):
        pass
    reset_tracer()
    assert capsys.readouterr().out == ""
    assert (tmp_path / "trace.jsonl").exists()


def test_long_span_prints_still_running_heartbeats(tmp_path, capsys, jsonl_reader):
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, heartbeat_s=0.2))
    with tracer.span("load_model"):
        with tracer.span("load_model.text_encoder"):
            time.sleep(0.5)
    reset_tracer()
    lines = [line for line in capsys.readouterr().out.splitlines() if "still running" in line]
    assert len(lines) >= 1, lines
    # only the innermost open span beats: it is the one the user is waiting on
    assert all(
        re.fullmatch(
            r"\[VERBOSE\]   load_model\.text_encoder still running \(elapsed \d+\.\ds, " + HEARTBEAT_MEMORY + r"\)", line
        )
        for line in lines
    ), lines
    heartbeats = [record for record in jsonl_reader(tmp_path / "trace.jsonl") if record["type"] == "heartbeat"]
    assert len(heartbeats) == len(lines)
    assert heartbeats[0]["fields"]["elapsed_s"] >= 0.2
    assert heartbeats[0]["memory"]["rss_mb"] > 0
    elapsed = [record["fields"]["elapsed_s"] for record in heartbeats]
    assert all(later - earlier >= 0.2 for earlier, later in zip(elapsed, elapsed[1:]))


def test_short_spans_get_no_heartbeat(capsys):
    tracer = init_tracer(TraceConfig(enabled=True, heartbeat_s=2.0))  # 40x the span: a busy CPU cannot beat
    for step in range(3):
        with tracer.span("step", step=step):
            time.sleep(0.05)
    reset_tracer()
    assert "still running" not in capsys.readouterr().out


def test_multi_line_text_follows_its_line_indented(capsys):
    from toolkit.trace.records import TraceRecord
    from toolkit.trace.sinks.console import format_record

    record = TraceRecord(type="event", name="inspection_inputs", ts=0.0, depth=1, pid=1, tid=1,
                         fields={"step": 5, "block": "=== A ===\n└── b: 1", "clip": "x.mp4"})
    assert format_record(record) == (
        "[VERBOSE]   inspection_inputs step=5 clip=x.mp4\n[VERBOSE]     === A ===\n[VERBOSE]     └── b: 1"
    )
