"""trace.jsonl and trace.json written by an enabled tracer: record fields, nesting, validity."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

from toolkit.trace import TraceConfig, Tracer, init_tracer, reset_tracer
from toolkit.trace.records import TraceRecord
from toolkit.trace.sinks import ChromeTraceSink


@pytest.fixture
def traced_run(tmp_path, jsonl_reader):
    """A small traced run: a parent span with a child span, an event and a failing span."""
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    assert isinstance(tracer, Tracer)
    latents = torch.arange(24, dtype=torch.float32).reshape(1, 2, 3, 4)
    with tracer.span("load_model", name_or_path="tiny") as parent:
        with tracer.span("load_model.transformer") as child:
            time.sleep(0.01)
            child.set(transformer=nn.Linear(4, 2), latents=latents)
        tracer.event("quantization", module="blocks.0.attn1.to_q", qtype="qint8")
        parent.set(components=1)
    with pytest.raises(ValueError, match="bad clip"):
        with tracer.span("encode_audio"):
            raise ValueError("bad clip")
    reset_tracer()
    return jsonl_reader(tmp_path / "trace.jsonl"), json.loads((tmp_path / "trace.json").read_text())


def test_jsonl_has_one_record_per_line_in_order(traced_run):
    records, _ = traced_run
    assert [(record["type"], record["name"]) for record in records] == [
        ("event", "trace_start"),
        ("span_begin", "load_model"),
        ("span_begin", "load_model.transformer"),
        ("span_end", "load_model.transformer"),
        ("event", "quantization"),
        ("span_end", "load_model"),
        ("span_begin", "encode_audio"),
        ("span_end", "encode_audio"),
    ]
    for record in records:
        assert set(record) >= {"type", "name", "ts", "depth", "pid", "tid", "fields", "duration_s", "memory"}


def test_span_records_have_fields_depth_parent_duration_memory(traced_run):
    records, _ = traced_run
    by_key = {(record["type"], record["name"]): record for record in records}
    parent_begin = by_key[("span_begin", "load_model")]
    child_end = by_key[("span_end", "load_model.transformer")]
    assert parent_begin["fields"] == {"name_or_path": "tiny"}
    assert parent_begin["depth"] == 0 and parent_begin["parent_id"] is None
    assert child_end["depth"] == 1 and child_end["parent_id"] == parent_begin["span_id"]
    assert child_end["duration_s"] >= 0.01
    assert child_end["fields"]["latents"] == {
        "shape": [1, 2, 3, 4],
        "dtype": "torch.float32",
        "device": "cpu",
        "min": 0.0,
        "max": 23.0,
        "mean": 11.5,
        "nan": 0,
    }
    assert child_end["fields"]["transformer"]["params"] == 10
    assert child_end["memory"]["rss_mb"] > 0
    assert set(child_end["memory_change"]) == set(child_end["memory"])
    assert by_key[("event", "quantization")]["depth"] == 1
    assert by_key[("event", "quantization")]["fields"] == {"module": "blocks.0.attn1.to_q", "qtype": "qint8"}
    assert by_key[("span_end", "load_model")]["duration_s"] > child_end["duration_s"]


def test_failed_span_records_the_error_and_reraises(traced_run):
    records, _ = traced_run
    failed = [record for record in records if record["name"] == "encode_audio" and record["type"] == "span_end"]
    assert failed[0]["error"] == "ValueError: bad clip"
    assert failed[0]["depth"] == 0


def test_chrome_trace_nests_child_inside_parent(traced_run):
    _, chrome = traced_run
    complete = {event["name"]: event for event in chrome["traceEvents"] if event["ph"] == "X"}
    parent, child = complete["load_model"], complete["load_model.transformer"]
    assert child["ts"] >= parent["ts"]
    assert child["ts"] + child["dur"] <= parent["ts"] + parent["dur"] + 1e-3
    assert child["dur"] >= 10_000  # microseconds: the child slept 10 ms
    assert set(parent["args"].pop("memory_change_mb")) == {"rss_mb"} | (
        {"cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_mb"} if torch.cuda.is_available() else set()
    )
    assert parent["args"] == {"name_or_path": "tiny", "components": 1}
    assert child["args"]["latents"]["shape"] == [1, 2, 3, 4]
    assert complete["encode_audio"]["args"]["error"] == "ValueError: bad clip"
    phases = {event["ph"] for event in chrome["traceEvents"]}
    assert {"X", "i", "C", "M"} <= phases
    instants = [event["name"] for event in chrome["traceEvents"] if event["ph"] == "i"]
    assert instants == ["trace_start", "quantization"]
    counters = [event for event in chrome["traceEvents"] if event["ph"] == "C"]
    assert all(event["args"]["rss_mb"] > 0 for event in counters)


def test_chrome_trace_is_valid_before_close_and_shows_open_spans(tmp_path):
    path = tmp_path / "trace.json"
    sink = ChromeTraceSink(path, origin_ts=100.0, flush_interval_s=0.0)
    assert json.loads(path.read_text())["traceEvents"][0]["ph"] == "M"
    begin = TraceRecord(type="span_begin", name="load_model", ts=101.0, depth=0, pid=1, tid=1, span_id=7)
    sink.write(begin)
    events = json.loads(path.read_text())["traceEvents"]
    assert [(event["ph"], event["name"], event["ts"]) for event in events[1:]] == [("B", "load_model", 1e6)]
    end = TraceRecord(
        type="span_end", name="load_model", ts=103.5, depth=0, pid=1, tid=1, span_id=7, duration_s=2.5,
        fields={"nan_loss": float("nan")},
    )
    sink.write(end)
    sink.close()
    complete = json.loads(path.read_text())["traceEvents"][1]
    assert (complete["ph"], complete["ts"], complete["dur"]) == ("X", 1e6, 2.5e6)
    assert complete["args"] == {"nan_loss": "nan"}
    assert not (tmp_path / "trace.json.tmp").exists()


def test_spans_in_another_thread_nest_on_their_own(tmp_path, jsonl_reader):
    import threading

    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))

    def worker() -> None:
        with tracer.span("prefetch"):
            pass

    with tracer.span("train"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    reset_tracer()
    prefetch = [record for record in jsonl_reader(tmp_path / "trace.jsonl") if record["name"] == "prefetch"]
    assert prefetch[0]["depth"] == 0 and prefetch[0]["parent_id"] is None
    train_tid = [record for record in jsonl_reader(tmp_path / "trace.jsonl") if record["name"] == "train"][0]["tid"]
    assert prefetch[0]["tid"] != train_tid


def test_close_is_idempotent_and_later_records_go_nowhere(tmp_path):
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    tracer.close()
    size = (tmp_path / "trace.jsonl").stat().st_size
    tracer.close()
    tracer.event("late")
    assert (tmp_path / "trace.jsonl").stat().st_size == size
    assert tracer.sink_names == []
