"""The null tracer and the per-process accessor: off means nothing recorded, nothing written."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest
import torch

from toolkit.errors import ConfigError
from toolkit.trace import NullTracer, TraceConfig, TraceConfigError, Tracer, get_tracer, init_tracer, reset_tracer
from toolkit.trace.heartbeat import THREAD_NAME


def _heartbeat_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


def test_get_tracer_is_null_until_enabled():
    assert isinstance(get_tracer(), NullTracer)
    assert get_tracer().enabled is False


def test_disabled_config_gives_null_tracer_that_writes_nothing(tmp_path, capsys):
    tracer = init_tracer(TraceConfig(enabled=False, output_dir=tmp_path, heartbeat_s=0.01))
    assert isinstance(tracer, NullTracer) and get_tracer() is tracer
    with tracer.span("load_model", weights=torch.ones(3)) as span:
        span.set(latents=torch.zeros(2))
    tracer.event("quantization", module="x")
    assert tracer.should_trace_step(0) is False
    assert tracer.span("a") is tracer.span("b", x=1)
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().out == ""
    assert _heartbeat_threads() == []


def test_null_span_lets_errors_through():
    with pytest.raises(KeyError):
        with get_tracer().span("encode_audio"):
            raise KeyError("clip")


class _Untouchable:
    """A field value that fails the test if anything formats, compares or reduces it."""

    def __getattribute__(self, name: str):
        raise AssertionError(f"the null tracer touched a field ({name})")


def test_null_span_touches_no_field_and_allocates_no_span():
    # How little a null span costs against a bare nullcontext is measured by
    # benchmarks/bench_null_span.py; here: it does no work a timing would see.
    tracer = get_tracer()
    spans = set()
    for step in range(3):
        with tracer.span("step", step=step, latents=_Untouchable()) as span:
            span.set(prediction=_Untouchable())
            tracer.event("noise", sigmas=_Untouchable())
        spans.add(id(span))
    assert len(spans) == 1


def test_enabled_tracer_replaces_and_reset_restores_null(tmp_path):
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=5))
    assert isinstance(tracer, Tracer) and tracer.enabled and get_tracer() is tracer
    assert len(_heartbeat_threads()) == 1
    second = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path / "again", console=False, heartbeat_s=0))
    assert second is not tracer and tracer.sink_names == []  # the first one was closed
    assert _heartbeat_threads() == []
    reset_tracer()
    assert isinstance(get_tracer(), NullTracer)


def test_non_main_rank_gets_null_tracer(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    config = TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0)
    assert isinstance(init_tracer(config, is_main_process=False), NullTracer)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RANK", "1")
    assert isinstance(init_tracer(config), NullTracer)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert isinstance(init_tracer(config), Tracer)
    monkeypatch.delenv("RANK")
    assert isinstance(init_tracer(config), NullTracer)
    monkeypatch.setenv("LOCAL_RANK", "first")
    with pytest.raises(ConfigError, match="LOCAL_RANK='first'"):
        init_tracer(config)


def test_initialised_accelerate_state_decides_the_rank(tmp_path, monkeypatch):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(variable, raising=False)
    Accelerator(cpu=True)  # as the trainer does (distributed_training.py)
    try:
        monkeypatch.setenv("RANK", "2")  # set after accelerate started: accelerate says rank 0
        tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
        assert isinstance(tracer, Tracer)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def _report_child_tracer(queue: multiprocessing.Queue) -> None:
    queue.put(type(get_tracer()).__name__)


def test_forked_child_gets_null_tracer(tmp_path):
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_report_child_tracer, args=(queue,))
    child.start()
    child.join(timeout=600)
    assert queue.get(timeout=600) == "NullTracer"
    assert isinstance(get_tracer(), Tracer)


def test_config_rejects_out_of_range_values():
    with pytest.raises(TraceConfigError, match="every_n_steps is 0"):
        TraceConfig(every_n_steps=0)
    with pytest.raises(TraceConfigError, match="first_steps is -1"):
        TraceConfig(first_steps=-1)
    with pytest.raises(TraceConfigError, match="heartbeat_s is -2"):
        TraceConfig(heartbeat_s=-2)


def test_should_trace_step_first_steps_then_every_n(tmp_path):
    tracer = Tracer(TraceConfig(enabled=True, first_steps=3, every_n_steps=10, heartbeat_s=0), sinks=[])
    assert [step for step in range(35) if tracer.should_trace_step(step)] == [0, 1, 2, 10, 20, 30]
    every_step = Tracer(TraceConfig(enabled=True, first_steps=0, every_n_steps=1, heartbeat_s=0), sinks=[])
    assert all(every_step.should_trace_step(step) for step in range(5))
    tracer.close()
    every_step.close()


def test_lazy_fields_are_called_only_by_the_enabled_tracer(tmp_path):
    calls = []

    def costly() -> dict:
        calls.append(1)
        return {"tokens": torch.arange(4)}

    null = get_tracer()
    with null.span("encode", costly, clip="a") as span:
        span.set(costly)
        null.event("noise", costly)
    assert calls == []
    tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    with tracer.span("encode", costly, clip="a") as span:
        span.set(costly, kept=2)
        tracer.event("noise", costly)
    reset_tracer()
    assert len(calls) == 3
    records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    begin, event, end = (
        next(r for r in records if r["type"] == kind and r["name"] == name)
        for kind, name in (("span_begin", "encode"), ("event", "noise"), ("span_end", "encode"))
    )
    assert begin["fields"]["clip"] == "a" and begin["fields"]["tokens"]["shape"] == [4]
    assert event["fields"]["tokens"]["max"] == 3
    assert end["fields"]["kept"] == 2 and end["fields"]["tokens"]["min"] == 0
