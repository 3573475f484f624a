"""ai-toolkit's LTX-2 jobs train on the tiny model: every key they write, a few steps, on the CPU.

Replaced, and why: `model.name_or_path` (tiny-ltx2) and the dataset folder (one demo clip), as a
user would; `training_folder` (the test's tmp folder); `device` cuda -> cpu and `train.optimizer`
adamw8bit -> adamw (bitsandbytes' 8-bit AdamW needs CUDA; the test machine has none);
`train.steps` -> 2; the sample size, frames and steps (768x768 or 1000x1000, 121 or 40 frames,
25 steps) -> 64x64, 9 frames, 2 steps, with one prompt; dataset buckets -> [64] and, in the YAML,
40 frames -> 9 (the demo clips have 17), so a run takes seconds on a CPU. Every other key is
ai-toolkit's, exercised as written: quantize and quantize_te (qfloat8), low_vram,
gradient_checkpointing, bf16 training, optimizer_params, timestep_type, content_or_style,
loss_type, ema_config, skip_first_sample, cache_text_embeddings under train, the renamed and the
UI-only keys.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open

from tests.conftest import read_jsonl
from tests.config.aitoolkit_facts import AITOOLKIT_LTX2_YAML, ui_ltx2_job
from toolkit.config import load_config
from toolkit.job import Job

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_CLIPS = REPO_ROOT / "data" / "demo_clips"


def for_cpu(job: dict, tmp_path: Path, prompts_key: str) -> dict:
    """`job` with the replacements listed in the module docstring."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for source in (DEMO_CLIPS / "demo_00.mp4", DEMO_CLIPS / "demo_00.txt"):
        shutil.copy2(source, clips / source.name)
    process = job["config"]["process"][0]
    process["model"]["name_or_path"] = "tiny-ltx2"
    dataset = process["datasets"][0]
    dataset.update(folder_path=str(clips), resolution=[64], num_frames=min(dataset["num_frames"], 9))
    process["training_folder"] = str(tmp_path / "output")
    process["device"] = "cpu"
    process["train"].update(optimizer="adamw", steps=2)
    process["sample"].update(width=64, height=64, num_frames=9, sample_steps=2)
    process["sample"][prompts_key] = process["sample"][prompts_key][:1]
    return job


@pytest.fixture(params=["ui_json", "yaml"])
def ai_toolkit_job(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The UI's job as the JSON it saves, or the ai-toolkit-style YAML, ready for the CPU."""
    if request.param == "ui_json":
        path = tmp_path / "ui_ltx2_job.json"
        path.write_text(json.dumps(for_cpu(ui_ltx2_job(), tmp_path, "samples"), indent=2))
    else:
        path = tmp_path / "ltx2_aitoolkit.yaml"
        path.write_text(yaml.safe_dump(for_cpu(yaml.safe_load(AITOOLKIT_LTX2_YAML), tmp_path, "prompts")))
    return path


def test_job_trains_saves_samples_and_traces_its_notes(ai_toolkit_job: Path, tiny_model_dir: Path) -> None:
    from toolkit.logging import LogManager
    from toolkit.trace import reset_tracer

    job_config = load_config(ai_toolkit_job, force_verbose=True)
    reset_tracer()
    try:
        job = Job(job_config, ai_toolkit_job)
        job.run()
    finally:
        reset_tracer()
        LogManager.get_instance().cleanup()

    name = job_config.config.name
    run_folder = Path(job_config.config.process[0].training_folder) / name
    lora = run_folder / f"{name}.safetensors"
    with safe_open(str(lora), framework="pt") as weights:
        keys = list(weights.keys())
        assert keys and all(weights.get_tensor(key).isfinite().all() for key in keys)
    first_sample = [] if job_config.config.process[0].train.skip_first_sample else ["000000000_0.mp4"]
    assert sorted(path.name for path in (run_folder / "samples").rglob("*.mp4")) == [*first_sample, "000000002_0.mp4"]

    records = read_jsonl(run_folder / "trace.jsonl")
    (notes,) = [record for record in records if record.get("name") == "config_notes"]
    fields = notes.get("fields", notes)
    assert fields["mapped"] == job_config.notes.mapped and fields["not_used"] == job_config.notes.not_used
    assert "config.process[0].train.cache_text_embeddings -> datasets[*].cache_text_embeddings" in fields["mapped"]
    assert any(item.startswith("config.process[0].train.train_unet") for item in fields["not_used"])
    steps = [record for record in records if record.get("name") == "hook_train_loop"]
    assert steps, "the trained steps are traced"


def test_generate_moves_frames_sizes_and_steps_to_what_ltx2_can_do_and_traces_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    import av

    from toolkit.logging import LogManager
    from toolkit.trace import reset_tracer

    raw = yaml.safe_load((REPO_ROOT / "config" / "examples" / "generate_ltx2_tiny.yaml").read_text())
    process = raw["config"]["process"][0]
    process["output_folder"] = str(tmp_path / "output")
    process["generate"].update(prompts=["a red square"], num_frames=8, width=60, sample_steps=1)
    path = tmp_path / "generate.yaml"
    path.write_text(yaml.safe_dump(raw))
    job_config = load_config(path)
    reset_tracer()
    try:
        Job(job_config, path).run()
    finally:
        reset_tracer()
        LogManager.get_instance().cleanup()

    run_folder = tmp_path / "output" / job_config.config.name
    (notes,) = [record for record in read_jsonl(run_folder / "trace.jsonl") if record.get("name") == "config_notes"]
    assert notes.get("fields", notes)["adjusted"] == [
        "config.process[0].generate.num_frames 8 -> 9 (LTX-2 needs 8k+1 frames)",
        "config.process[0].generate.width 60 -> 64 (LTX-2 needs multiples of 32)",
        "config.process[0].generate.sample_steps 1 -> 2 (LTX-2's scheduler needs at least 2 steps)",
    ]
    (clip,) = run_folder.glob("*.mp4")
    with av.open(str(clip)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (64, 64, 3)
