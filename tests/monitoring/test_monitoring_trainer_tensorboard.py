"""The tiny trainer writes every enabled TensorBoard category, at the right steps; a category switched off writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from toolkit.config import load_config
from toolkit.job import Job
from toolkit.trace import reset_tracer

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_tiny.yaml"
STEPS = 12
ALL_CATEGORIES = {
    "01_Training", "02_Loss_Components", "03_Epoch_Summary", "04_Learning_Rate", "05_Performance",
    "06_Diffusion", "07_Noise_Analysis", "08_Model_Architecture", "09_Parameter_Stats", "10_Histograms",
    "11_Gradients", "12_Samples", "13_Noise_Visualization", "14_System", "15_Configuration",
}
EXPENSIVE = {
    "histograms": {"10_Histograms"},
    "parameter_tracking": {"09_Parameter_Stats"},
    "video_logging": {"12_Samples"},
    "noise_visualization": {"13_Noise_Visualization"},
    "profiling": {"05_Performance", "14_System"},
}


def _train(folder: Path, logging_overrides: dict) -> Path:
    raw = yaml.safe_load(TINY_EXAMPLE.read_text())
    process = raw["config"]["process"][0]
    process["training_folder"] = str(folder)
    process["datasets"][0]["folder_path"] = str(REPO_ROOT / "data" / "demo_clips")
    process["datasets"][0]["cache_latents_to_disk"] = False
    process["datasets"][0]["cache_text_embeddings"] = False
    process["model"]["verbose"] = False
    process["train"]["steps"] = STEPS
    process["save"]["save_every"] = 100
    process["sample"].update({"sample_every": 6, "sample_steps": 2, "prompts": [process["sample"]["prompts"][0]]})
    process["logging"] = {"log_every": 2, "diagnostic_every": 5, "flush_every": 5, "use_tensorboard": True, **logging_overrides}
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        Job(load_config(path), path).run()
    finally:
        reset_tracer()
    return folder / raw["config"]["name"] / "tensorboard"


def _read(tensorboard_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(
        str(tensorboard_dir), size_guidance={"scalars": 0, "images": 0, "audio": 0, "histograms": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


def _categories(accumulator: EventAccumulator) -> set[str]:
    tags = accumulator.Tags()
    names = [tag for kind in ("scalars", "images", "audio", "histograms", "tensors") for tag in tags[kind]]
    return {name.split("/")[0] for name in names}


@pytest.fixture(scope="module")
def full_run(traced_tiny_run) -> EventAccumulator:
    """The events of the shared 12-step run (tests/conftest.py), trained with the settings `_train` uses."""
    return _read(traced_tiny_run / "tensorboard")


def test_every_category_is_written(full_run):
    assert _categories(full_run) == ALL_CATEGORIES


def test_scalars_are_written_at_their_steps(full_run):
    assert [event.step for event in full_run.Scalars("01_Training/loss")] == list(range(0, STEPS, 2))
    assert [event.step for event in full_run.Scalars("06_Diffusion/noise_prediction_mse")] == [0, 5, 10]
    losses = [event.value for event in full_run.Scalars("01_Training/loss")]
    assert all(value > 0 for value in losses)
    lrs = [event.value for event in full_run.Scalars("04_Learning_Rate/lr")]
    assert lrs and all(value == pytest.approx(1e-3) for value in lrs)


def test_samples_have_frames_and_audio(full_run):
    tags = full_run.Tags()
    assert "12_Samples/prompt_0/frames" in tags["images"]
    assert "12_Samples/prompt_0/audio" in tags["audio"]
    sample_steps = sorted({event.step for event in full_run.Images("12_Samples/prompt_0/frames")})
    assert sample_steps == [0, 6, 12]
    audio = full_run.Audio("12_Samples/prompt_0/audio")[0]
    assert audio.sample_rate == 16000 and audio.length_frames > 0
    assert {"13_Noise_Visualization/noisy", "13_Noise_Visualization/predicted", "13_Noise_Visualization/target"} <= set(
        tags["images"]
    )


def test_switched_off_categories_write_nothing(tmp_path, tiny_cache_dir):
    off = {flag: False for flag in EXPENSIVE}
    categories = _categories(_read(_train(tmp_path, off)))
    removed = set().union(*EXPENSIVE.values())
    assert categories == ALL_CATEGORIES - removed
