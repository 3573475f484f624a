"""A failing sink is dropped with one warning; the traced code and the other sinks go on."""

from __future__ import annotations

import warnings

import pytest
import torch

from toolkit.trace import TraceConfig, Tracer, TraceSinkWarning, init_tracer, reset_tracer
from toolkit.trace.records import TraceRecord
from toolkit.trace.sinks import ConsoleSink, TraceSink


class DiskFullSink(TraceSink):
    """Fails like a full disk after its first record."""

    name = "disk-full"

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    def write(self, record: TraceRecord) -> None:
        if self.written >= 1:
            raise OSError(28, "No space left on device")
        self.written += 1

    def close(self) -> None:
        self.closed = True


class ListSink(TraceSink):
    name = "list"

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def write(self, record: TraceRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


def test_sink_raising_on_write_is_dropped_with_one_warning():
    failing, kept = DiskFullSink(), ListSink()
    config = TraceConfig(enabled=True, heartbeat_s=0)
    with pytest.warns(TraceSinkWarning) as caught:
        tracer = Tracer(config, sinks=[failing, kept])
        for step in range(5):
            with tracer.span("step", step=step, loss=torch.tensor(0.5)):
                pass
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "disk-full" in message and "No space left on device" in message
    assert failing.closed
    assert tracer.sink_names == ["list"]
    assert [record.type for record in kept.records].count("span_end") == 5
    tracer.close()


def test_sink_raising_on_close_warns_and_close_finishes():
    class CloseFails(ListSink):
        name = "close-fails"

        def close(self) -> None:
            raise OSError("stale file handle")

    other = ListSink()
    tracer = Tracer(TraceConfig(enabled=True, heartbeat_s=0), sinks=[CloseFails(), other])
    with pytest.warns(TraceSinkWarning, match="stale file handle"):
        tracer.close()
    assert tracer.sink_names == []


def test_unwritable_output_dir_warns_once_and_keeps_console(tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a regular file")
    with pytest.warns(TraceSinkWarning, match="cannot create the trace folder") as caught:
        tracer = init_tracer(TraceConfig(enabled=True, output_dir=blocker / "trace", heartbeat_s=0))
    assert len(caught) == 1
    assert tracer.sink_names == ["console"]
    with tracer.span("load_model"):
        pass
    assert "[VERBOSE] load_model done in" in capsys.readouterr().out


def test_jsonl_file_failing_midway_leaves_chrome_trace_going(tmp_path):
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    jsonl_sink = next(sink for sink in tracer._sinks if sink.name.endswith("trace.jsonl"))
    jsonl_sink._file.close()  # what a vanished disk looks like to the writer
    with pytest.warns(TraceSinkWarning, match="trace.jsonl"):
        with tracer.span("save_model"):
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tracer.span("save_model_again"):
            pass
    reset_tracer()
    assert '"save_model_again"' in (tmp_path / "trace.json").read_text()


def test_console_sink_failing_on_closed_stdout_is_dropped(monkeypatch):
    class ClosedStream:
        def write(self, text: str) -> int:
            raise ValueError("I/O operation on closed file")

        def flush(self) -> None:
            pass

    kept = ListSink()
    monkeypatch.setattr("sys.stdout", ClosedStream())
    with pytest.warns(TraceSinkWarning, match="console"):
        tracer = Tracer(TraceConfig(enabled=True, heartbeat_s=0), sinks=[ConsoleSink(), kept])
    tracer.event("after")
    assert [record.name for record in kept.records] == ["trace_start", "after"]
    tracer.close()
