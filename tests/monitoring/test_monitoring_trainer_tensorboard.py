"""The tiny trainer writes every enabled TensorBoard category, at the right steps; a category switched off writes nothing."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageSequence
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from toolkit.config import load_config
from toolkit.job import Job
from toolkit.trace import reset_tracer

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_tiny.yaml"
STEPS = 12
ALL_CATEGORIES = {
    "01_Training", "02_Loss_Components", "03_Epoch_Summary", "04_Learning_Rate", "05_Performance",
    "06_Diffusion", "07_Noise_Analysis", "08_Model_Architecture", "09_Parameter_Stats", "10_Parameter_Histograms",
    "11_Gradient_Stats", "12_Generated_Samples", "13_Noise_Visualization", "14_System", "15_Configuration",
}
EXPENSIVE = {
    "histograms": {"10_Parameter_Histograms"},
    "parameter_tracking": {"09_Parameter_Stats"},
    "video_logging": {"12_Generated_Samples"},
    "noise_visualization": {"13_Noise_Visualization"},
    "profiling": {"14_System"},  # 05_Performance keeps the progress bar's samples/s
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
    assert [event.step for event in full_run.Scalars("01_Training/Loss")] == list(range(0, STEPS, 2))
    assert [event.step for event in full_run.Scalars("06_Diffusion/Noise_Prediction_MSE")] == [0, 5, 10]
    assert [event.step for event in full_run.Scalars("05_Performance/Samples_Per_Second")] == list(range(STEPS))
    losses = [event.value for event in full_run.Scalars("01_Training/Loss")]
    assert all(value > 0 for value in losses)
    lrs = [event.value for event in full_run.Scalars("04_Learning_Rate/Learning_Rate")]
    assert lrs and all(value == pytest.approx(1e-3) for value in lrs)
    schedule = full_run.Scalars("04_Learning_Rate/Schedule")
    assert schedule[-1].step == STEPS - 1 and all(event.value == pytest.approx(1e-3) for event in schedule)


def test_seed_004_categories_by_name_and_no_number_under_two_tags(full_run, traced_tiny_run):
    for tag in ("01_Training/Loss", "01_Training/Loss_Smoothed", "11_Gradient_Stats/Total_Gradient_Norm",
                "05_Performance/Samples_Per_Second", "14_System/ram_used_gb", "03_Epoch_Summary/Loss"):  # fmt: skip
        assert full_run.Scalars(tag), tag
    assert "10_Parameter_Histograms" in {tag.split("/")[0] for tag in full_run.Tags()["histograms"]}
    series: dict[tuple, str] = {}
    headline = [tag for tag in full_run.Tags()["scalars"] if tag.count("/") == 1]  # not per-parameter breakdowns
    for tag in headline:
        points = tuple((event.step, round(event.value, 9)) for event in full_run.Scalars(tag))
        if len(points) > 1 and len({value for _, value in points}) > 1:  # constants (lr, counts) may repeat honestly
            assert points not in series, f"{tag} repeats {series.get(points)}"
            series[points] = tag
    records = [json.loads(line) for line in (traced_tiny_run / "metrics.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in records]
    assert steps == sorted(steps) and steps[-1] == STEPS - 1
    logged = {(name, record["step"]) for record in records for name in record["metrics"]}
    scalars = {(tag, event.step) for tag in full_run.Tags()["scalars"] for event in full_run.Scalars(tag)}
    assert {entry for entry in scalars if entry[0] != "04_Learning_Rate/Schedule"} == logged


def test_samples_have_videos_and_audio(full_run):
    tags = full_run.Tags()
    assert "12_Generated_Samples/prompt_0/Video" in tags["images"]
    assert "12_Generated_Samples/prompt_0/Audio" in tags["audio"]
    videos = full_run.Images("12_Generated_Samples/prompt_0/Video")
    assert sorted({event.step for event in videos}) == [0, 6, 12]
    assert len(list(ImageSequence.Iterator(Image.open(BytesIO(videos[0].encoded_image_string))))) > 1
    audio = full_run.Audio("12_Generated_Samples/prompt_0/Audio")[0]
    assert audio.sample_rate == 16000 and audio.length_frames > 0
    noise = full_run.Images("13_Noise_Visualization/Noisy_Predicted_Target_Error")
    assert [event.step for event in noise] == [0, 5, 10]


def test_switched_off_categories_write_nothing(tmp_path, tiny_cache_dir):
    off = {flag: False for flag in EXPENSIVE}
    categories = _categories(_read(_train(tmp_path, off)))
    removed = set().union(*EXPENSIVE.values())
    assert categories == ALL_CATEGORIES - removed
