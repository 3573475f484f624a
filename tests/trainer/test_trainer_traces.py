"""With model.verbose, trace.jsonl holds the trainer's phases with their fields, and only the traced steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import read_jsonl

STEPS = 12
TRACED_STEPS = [0, 1, 2, 5, 10]  # the first 3, then every 5th


@pytest.fixture(scope="module")
def trace(traced_tiny_run):
    """The records of the shared 12-step verbose run (tests/conftest.py): samples at steps 0, 6, 12, saves at 6, 12."""
    return read_jsonl(traced_tiny_run / "trace.jsonl")


def _spans(records, name):
    """(begin fields, end record) of every span called `name`, in order."""
    ends = {r["span_id"]: r for r in records if r["type"] == "span_end"}
    return [(r["fields"], ends[r["span_id"]]) for r in records if r["type"] == "span_begin" and r["name"] == name]


def _ids(records, name):
    return {r["span_id"] for r in records if r["type"] == "span_begin" and r["name"] == name}


def test_hook_train_loop_records_the_step_numbers_on_the_traced_steps_only(trace):
    spans = _spans(trace, "hook_train_loop")
    assert [begin["step"] for begin, _ in spans] == TRACED_STEPS
    for _, end in spans:
        fields = end["fields"]
        for name in ("loss", "video_loss", "audio_loss", "grad_norm", "lr", "step_seconds"):
            assert isinstance(fields[name], (int, float)), (name, fields)
        assert fields["loss"] == pytest.approx(fields["video_loss"] + fields["audio_loss"], rel=1e-5)
        assert fields["lr"] == pytest.approx(1e-3)
        assert fields["step_seconds"] > 0 and math.isfinite(fields["step_seconds"])
        assert fields["grad_norm"] > 0
        assert end["duration_s"] > 0


def test_predict_noise_is_primary_and_holds_the_model_call(trace):
    spans = _spans(trace, "predict_noise")
    assert len(spans) == len(TRACED_STEPS)
    assert all(begin["kind"] == "primary" for begin, _ in spans)
    step_ids = _ids(trace, "hook_train_loop")
    predict_ids = _ids(trace, "predict_noise")
    begins = [r for r in trace if r["type"] == "span_begin"]
    assert all(r["parent_id"] in step_ids for r in begins if r["name"] == "predict_noise")
    under_predict = [r for r in begins if r["name"] == "get_noise_prediction" and r["parent_id"] in predict_ids]
    assert len(under_predict) == len(TRACED_STEPS)


def test_untraced_steps_record_no_model_calls(trace):
    """step_scope mutes everything a step calls on the steps between traced ones."""
    by_id = {r["span_id"]: r for r in trace if r["type"] == "span_begin"}

    def inside_a_step(record) -> bool:
        parent = record["parent_id"]
        while parent is not None:
            if by_id[parent]["name"] == "hook_train_loop":
                return True
            parent = by_id[parent]["parent_id"]
        return False

    model_calls = [r for r in trace if r["name"] == "get_noise_prediction" and r["type"] == "span_begin"]
    assert len(model_calls) == len(TRACED_STEPS)  # 12 steps ran, sampling goes through the pipeline
    assert all(inside_a_step(r) for r in model_calls)
    assert len([r for r in trace if r["name"] == "get_noise_prediction" and r["type"] == "span_end"]) == len(model_calls)


def test_unload_text_encoder_records_memory_before_and_after(trace):
    (begin, end), = _spans(trace, "unload_text_encoder")
    assert begin["memory_before"]["rss_mb"] > 0
    assert end["fields"]["memory_after"]["rss_mb"] > 0


def test_save_checkpoint_records_files_bytes_and_seconds(trace):
    spans = _spans(trace, "save_checkpoint")
    assert [begin["step"] for begin, _ in spans] == [6, 12]
    for _, end in spans:
        fields = end["fields"]
        names = sorted(Path(f).name for f in fields["files"])
        assert {"lora.safetensors", "state.json", "training_state.pt", "config.yaml"} <= set(names)
        assert fields["bytes"] > 1000
        assert fields["seconds"] > 0


def test_every_lora_file_is_saved_through_the_model(trace):
    """Seed 000's save point: LTX2Model.save_model writes (and traces) each LoRA file; the checkpoint holds them."""
    spans = _spans(trace, "save_model")
    written = [Path(end["fields"]["files"][0]) for _, end in spans]
    run = written[0].parent
    assert [path.relative_to(run).as_posix() for path in written] == [
        f"{run.name}_000000006.safetensors", "checkpoints/.step_000000006.partial/lora.safetensors",
        f"{run.name}_000000012.safetensors", "checkpoints/.step_000000012.partial/lora.safetensors",
        f"{run.name}.safetensors",
    ]  # the resume copy is written into the checkpoint's staging folder, which is renamed when complete
    checkpoint_ids = _ids(trace, "save_checkpoint")
    parents = [r["parent_id"] for r in trace if r["type"] == "span_begin" and r["name"] == "save_model"]
    assert [parent in checkpoint_ids for parent in parents] == [True, True, True, True, False]  # the final LoRA
    for (begin, end), path in zip(spans, written):
        resume_copy = path.name == "lora.safetensors"
        # Files for users in save.format (the original layout by default); resume copies in diffusers' own.
        assert begin["format"] == ("diffusers" if resume_copy else "comfy") and begin["step"] in (6, 12)
        assert end["fields"]["strength_folded"] is not resume_copy
        assert end["fields"]["bytes"] > 1000 and end["fields"]["seconds"] > 0
    assert written[-1].stat().st_size == spans[-1][1]["fields"]["bytes"]


def test_sample_spans_at_the_sampling_steps(trace):
    spans = _spans(trace, "sample")
    assert [begin["step"] for begin, _ in spans] == [0, 6, 12]
    for _, end in spans:
        (path,) = end["fields"]["files"]
        assert str(path).endswith(".mp4")
    assert len(_spans(trace, "generate_single_image")) == 3
