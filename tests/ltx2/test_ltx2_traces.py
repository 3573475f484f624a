"""What LTX2Model's phases write to the verbose trace, and that nothing is written with the tracer off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from extensions_built_in.diffusion_models.ltx2.LTX2Model import GenerationSettings, LTX2Model
from extensions_built_in.diffusion_models.ltx2.checkpoint import COMPONENT_ORDER
from tests.conftest import read_jsonl, tiny_model_config
from toolkit.trace import TraceConfig, get_tracer, init_tracer, reset_tracer

SETTINGS = GenerationSettings(width=32, height=32, num_frames=9, fps=24, steps=2, guidance_scale=1.0, seed=3)
TRACED_PHASES = (
    "load_model",
    "load_component",
    "encode_images",
    "encode_audio",
    "get_prompt_embeds",
    "get_noise_prediction",
    "generate_single_image",
)


def run_phases(model_dir: Path, output_path: Path) -> dict:
    """Load the tiny model and run every phase once; returns the model and what each phase returned."""
    model = LTX2Model(tiny_model_config(name_or_path=str(model_dir)), "cpu").load_model()
    video = model.encode_images(torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    audio = model.encode_audio(torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(0)) * 0.1, 16000)
    prompt = model.get_prompt_embeds(["a red square"])
    prediction = model.get_noise_prediction(video.latents, audio.latents, torch.tensor([0.5]), prompt, fps=24.0)
    clip = model.generate_single_image("a red square", output_path, SETTINGS)
    return {"model": model, "video": video, "audio": audio, "prediction": prediction, "clip": clip}


@pytest.fixture(scope="module")
def traced_run(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("traced")
    reset_tracer()
    init_tracer(TraceConfig(enabled=True, output_dir=folder, console=False, heartbeat_s=0))
    try:
        results = run_phases(tiny_model_dir, folder / "clip.mp4")
    finally:
        reset_tracer()
    results["records"] = read_jsonl(folder / "trace.jsonl")
    results["chrome"] = json.loads((folder / "trace.json").read_text())
    return results


def span_ends(records: list[dict], name: str) -> list[dict]:
    return [record for record in records if record["type"] == "span_end" and record["name"] == name]


def test_every_phase_has_a_span_end_with_a_duration(traced_run):
    records = traced_run["records"]
    for name in TRACED_PHASES:
        ends = span_ends(records, name)
        assert ends, f"no span_end for {name}"
        assert all(end["duration_s"] > 0 for end in ends), name
    # Every span that began also ended, with no error.
    begun = {record["span_id"] for record in records if record["type"] == "span_begin"}
    ended = {record["span_id"] for record in records if record["type"] == "span_end"}
    assert begun == ended
    assert all(record["error"] is None for record in records)


def test_one_load_component_per_component_with_real_facts(traced_run):
    records, model = traced_run["records"], traced_run["model"]
    (load_model,) = span_ends(records, "load_model")
    begins = {r["span_id"]: r for r in records if r["type"] == "span_begin" and r["name"] == "load_component"}
    ends = span_ends(records, "load_component")
    assert sorted(begins[end["span_id"]]["fields"]["component"] for end in ends) == sorted(COMPONENT_ORDER)
    for end in ends:
        name = begins[end["span_id"]]["fields"]["component"]
        component = model.components[name]
        fields = end["fields"]
        assert end["parent_id"] == load_model["span_id"], name
        assert fields["cls"] == type(component).__name__, name
        if isinstance(component, torch.nn.Module):
            assert fields["params"] == sum(p.numel() for p in component.parameters()), name
            assert fields["dtype"] == str(next(component.parameters()).dtype), name
            assert fields["device"] == "cpu", name
    facts = {begins[end["span_id"]]["fields"]["component"]: end["fields"] for end in ends}
    assert facts["transformer"]["cls"] == "LTX2VideoTransformer3DModel"
    assert facts["text_encoder"]["cls"] == "Gemma3ForConditionalGeneration"
    assert facts["scheduler"]["cls"] == "FlowMatchEulerDiscreteScheduler"


def test_phase_fields_describe_the_real_tensors(traced_run):
    records = traced_run["records"]
    (encode_images,) = span_ends(records, "encode_images")
    assert encode_images["fields"]["latents"]["shape"] == list(traced_run["video"].latents.shape) == [1, 4, 2, 4, 4]
    assert encode_images["fields"]["spatial_compression"] == 8
    assert encode_images["fields"]["temporal_compression"] == 8
    (encode_audio,) = span_ends(records, "encode_audio")
    assert encode_audio["fields"]["mel"]["shape"] == list(traced_run["audio"].mel_shape)
    assert encode_audio["fields"]["latents"]["shape"] == list(traced_run["audio"].latents.shape)
    (prediction,) = span_ends(records, "get_noise_prediction")
    assert prediction["fields"]["video_prediction"]["shape"] == list(traced_run["prediction"].video.shape)
    described = prediction["fields"]["video_prediction"]
    assert described["nan"] == 0
    assert described["min"] == pytest.approx(traced_run["prediction"].video.min().item())
    assert described["max"] == pytest.approx(traced_run["prediction"].video.max().item())
    (generate,) = span_ends(records, "generate_single_image")
    output_path = Path(generate["fields"]["output_path"])
    assert output_path == traced_run["clip"].path and output_path.is_file()
    assert generate["fields"]["bytes"] == output_path.stat().st_size
    # The prompt of the sample is encoded inside generate_single_image.
    inner = [end for end in span_ends(records, "get_prompt_embeds") if end["parent_id"] == generate["span_id"]]
    assert len(inner) == 1


def test_chrome_timeline_nests_components_inside_load_model(traced_run):
    complete = [event for event in traced_run["chrome"]["traceEvents"] if event.get("ph") == "X"]
    (load_model,) = [event for event in complete if event["name"] == "load_model"]
    components = [event for event in complete if event["name"] == "load_component"]
    assert sorted(event["args"]["component"] for event in components) == sorted(COMPONENT_ORDER)
    start, end = load_model["ts"], load_model["ts"] + load_model["dur"]
    for event in components:
        assert event["dur"] > 0
        assert start <= event["ts"] and event["ts"] + event["dur"] <= end, event["args"]["component"]


def test_console_lines_when_on(tiny_model, tmp_path, capsys):
    init_tracer(TraceConfig(enabled=True, output_dir=None, console=True, heartbeat_s=0))
    try:
        tiny_model.get_prompt_embeds(["hi"])
    finally:
        reset_tracer()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[VERBOSE]")]
    assert any("get_prompt_embeds done in" in line and "tokens_kept=[3]" in line for line in lines)


def test_nothing_printed_or_written_with_the_tracer_off(tiny_model_dir, tmp_path, capsys):
    reset_tracer()
    assert get_tracer().enabled is False
    results = run_phases(tiny_model_dir, tmp_path / "clip.mp4")
    assert results["clip"].path.is_file()
    captured = capsys.readouterr()
    assert "[VERBOSE]" not in captured.out + captured.err
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["clip.mp4"]
