"""The trace files of a resumed run keep the first run's records; each start is marked by its trace_start."""

from __future__ import annotations

import json
import warnings

import pytest

from toolkit.trace import TraceConfig, init_tracer, reset_tracer
from toolkit.trace.errors import TraceSinkWarning


def _run(folder, resume_from_step: int, label: str) -> None:
    tracer = init_tracer(
        TraceConfig(enabled=True, output_dir=folder, console=False, heartbeat_s=0, resume_from_step=resume_from_step),
        is_main_process=True,
    )
    with tracer.span("hook_train_loop", step=resume_from_step):
        tracer.event("marker", run=label)
    reset_tracer()


def test_a_second_start_appends_to_both_trace_files(tmp_path, jsonl_reader):
    _run(tmp_path, 0, "first")
    first_json = json.loads((tmp_path / "trace.json").read_text())
    _run(tmp_path, 40, "second")

    records = jsonl_reader(tmp_path / "trace.jsonl")
    starts = [r["fields"]["resume_from_step"] for r in records if r["name"] == "trace_start"]
    assert starts == [0, 40]
    assert [r["fields"]["run"] for r in records if r["name"] == "marker"] == ["first", "second"]
    assert [r["name"] for r in records].index("trace_start", 1) == 4  # the first run's 4 records come first

    chrome = json.loads((tmp_path / "trace.json").read_text())
    assert chrome["traceEvents"][: len(first_json["traceEvents"])] == first_json["traceEvents"]
    markers = [e for e in chrome["traceEvents"] if e["name"] == "marker"]
    assert [e["args"]["run"] for e in markers] == ["first", "second"]
    assert markers[1]["ts"] > markers[0]["ts"]  # one time axis: the second run comes after the first
    assert chrome["otherData"]["origin_unix_s"] == first_json["otherData"]["origin_unix_s"]
    spans = [e for e in chrome["traceEvents"] if e["ph"] == "X" and e["name"] == "hook_train_loop"]
    assert [e["args"]["step"] for e in spans] == [0, 40]


def test_a_line_cut_by_a_killed_run_does_not_swallow_the_next_start(tmp_path, jsonl_reader):
    _run(tmp_path, 0, "first")
    with open(tmp_path / "trace.jsonl", "a") as file:
        file.write('{"type": "span_begin", "name": "save_mo')  # killed mid-write
    _run(tmp_path, 3, "second")
    lines = (tmp_path / "trace.jsonl").read_text().splitlines()
    assert lines[4] == '{"type": "span_begin", "name": "save_mo'
    second = [json.loads(line) for line in lines[5:]]
    assert second[0]["name"] == "trace_start" and second[0]["fields"]["resume_from_step"] == 3


def test_an_unreadable_chrome_trace_is_moved_aside_with_a_warning(tmp_path):
    (tmp_path / "trace.json").write_text('{"traceEvents": [{"ph": "X"')
    with pytest.warns(TraceSinkWarning, match=r"trace.json is not a readable Chrome trace .*trace.json.unreadable"):
        _run(tmp_path, 7, "after")
    assert (tmp_path / "trace.json.unreadable").read_text() == '{"traceEvents": [{"ph": "X"'
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert [e["args"]["resume_from_step"] for e in events if e["name"] == "trace_start"] == [7]
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceSinkWarning)
        _run(tmp_path, 8, "again")  # the new file reads back without a warning
