"""Verbose off costs nothing: a training step makes no tokenizer call and builds no trace argument.

Each counter wraps a real function the trace layer would call (the describers,
the lazy field builders, memory readings, the tokenizer); the same step with the
trace on must call them, so the zero counts are not the counters' blindness.
"""

from __future__ import annotations

import collections
import importlib

import pytest

from extensions_built_in.diffusion_models.ltx2 import placement
from extensions_built_in.diffusion_models.ltx2.timestep_conditioning import TimestepConditioning
from extensions_built_in.sd_trainer import SDTrainer as trainer_module
from extensions_built_in.sd_trainer import step_loss
from tests.trainer.conftest import set_up_trainer, train_steps, write_config
from toolkit.trace import TraceConfig, get_tracer, init_tracer, reset_tracer

# By module path: the package re-exports `describe` and `Tracer`, which hide their modules' names.
describe_module = importlib.import_module("toolkit.trace.describe")
span_module = importlib.import_module("toolkit.trace.span")
tracer_module = importlib.import_module("toolkit.trace.tracer")


class CallCounter:
    """Counts calls of named functions (monkeypatched with counting wrappers)."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.counts: collections.Counter[str] = collections.Counter()

    def wrap(self, owner, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)

        def counted(*args, **kwargs):
            self.counts[label] += 1
            return original(*args, **kwargs)

        self.monkeypatch.setattr(owner, attribute, counted)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, tiny_cache_dir):
    folder = tmp_path_factory.mktemp("trace_off")
    # i2v on every clip, so the step also passes the image-to-video trace point.
    return set_up_trainer(write_config(folder, {"train.steps": 10, "train.i2v": True}, name="trace_off"))


@pytest.fixture
def counter(monkeypatch, trainer):
    counter = CallCounter(monkeypatch)
    counter.wrap(type(trainer.model.tokenizer), "__call__", "tokenizer")
    counter.wrap(tracer_module, "describe_fields", "describe_fields")
    counter.wrap(span_module, "describe_fields", "describe_fields")
    counter.wrap(describe_module, "describe_tensor", "describe_tensor")
    counter.wrap(describe_module, "describe_module", "describe_module")
    counter.wrap(trainer_module, "memory_snapshot", "memory_snapshot")
    counter.wrap(placement, "memory_snapshot", "component_memory_snapshot")
    counter.wrap(step_loss, "_clip_fields", "clip_fields")
    counter.wrap(TimestepConditioning, "trace_fields", "timestep_trace_fields")
    return counter


def test_a_training_step_with_verbose_off_formats_nothing(trainer, counter):
    assert not trainer.tracer.enabled
    train_steps(trainer, 2)
    assert dict(counter.counts) == {}


def test_the_same_step_with_verbose_on_builds_its_trace_arguments(trainer, counter, tmp_path):
    trainer.tracer = init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    try:
        train_steps(trainer, 1)
    finally:
        reset_tracer()
        trainer.tracer = get_tracer()
    counts = counter.counts
    assert counts["describe_fields"] > 0 and counts["describe_tensor"] > 0
    assert counts["memory_snapshot"] == 1  # the step span's memory field
    assert counts["clip_fields"] >= 1 and counts["timestep_trace_fields"] >= 1
    assert counts["tokenizer"] == 0  # the step trains on cached prompt embeddings
    assert '"i2v_conditioning"' in (tmp_path / "trace.jsonl").read_text()


def test_get_prompt_embeds_tokenizes_once_when_off_and_again_only_for_the_trace(tiny_model, monkeypatch, tmp_path):
    counter = CallCounter(monkeypatch)
    counter.wrap(type(tiny_model.tokenizer), "__call__", "tokenizer")
    tiny_model.get_prompt_embeds(["a red square", "a blue circle"])
    assert counter.counts["tokenizer"] == 1
    init_tracer(TraceConfig(enabled=True, output_dir=tmp_path, console=False, heartbeat_s=0))
    try:
        tiny_model.get_prompt_embeds(["a red square", "a blue circle"])
    finally:
        reset_tracer()
    # On: the encode's call plus the trace's `truncated` field, which tokenizes without truncation.
    assert counter.counts["tokenizer"] == 1 + 2
    assert '"truncated": [false, false]' in (tmp_path / "trace.jsonl").read_text()
