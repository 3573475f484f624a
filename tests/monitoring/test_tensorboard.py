"""TensorBoardMonitor: a 12-step fake training run through the logger, read back from the event files and metrics.jsonl."""

from __future__ import annotations

import json
import math
from io import BytesIO
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from PIL import Image, ImageSequence
from torch import nn

from toolkit.logging import LogConfig, LogManager, setup_logging
from toolkit.monitoring.tensorboard import (
    Category,
    TensorBoardError,
    TensorBoardFlags,
    TensorBoardMonitor,
    block_of_parameter,
)

STEPS = 12
LOG_STEPS = [0, 2, 4, 6, 8, 10]
DIAGNOSTIC_STEPS = [0, 4, 8]
SAMPLE_STEP = 6
FLAGS_ON = dict(log_every=2, diagnostic_every=4)
EXPENSIVE_OFF = dict(histograms=False, parameter_tracking=False, video_logging=False,
                     noise_visualization=False, profiling=False)  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_manager():
    yield
    LogManager.get_instance().cleanup()
    LogManager._instance = None


def open_monitor(log_dir: Path, flags: TensorBoardFlags, tensorboard: bool = True) -> TensorBoardMonitor:
    """A monitor on a logger writing metrics.jsonl to `log_dir` and, with `tensorboard`, events to `log_dir`/tensorboard."""
    config = LogConfig(name="tb_test", log_dir=log_dir, enable_tensorboard=tensorboard, tensorboard_flush_every=5)
    return TensorBoardMonitor(setup_logging(config), flags)


def fake_training(log_dir: Path, flags: TensorBoardFlags) -> dict:
    """Train nn.Sequential(Linear, ReLU, Linear) for 12 steps, calling every monitor method each step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    seen = {"loss": {}, "grad_norm": {}, "block_0": {}}
    monitor = open_monitor(log_dir, flags)
    try:
        monitor.log_configuration({"train": {"lr": 0.1, "steps": STEPS}, "model": {"name": "tiny"}, "folder": log_dir})
        monitor.log_model_architecture(0, {"model": model, "head": model[2]})
        for step in range(STEPS):
            inputs, target = torch.randn(4, 8), torch.randn(4, 4)
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), target)
            loss.backward()
            grads = {name: param.grad.clone() for name, param in model.named_parameters()}
            seen["loss"][step] = loss.item()
            seen["grad_norm"][step] = math.sqrt(sum(grad.pow(2).sum().item() for grad in grads.values()))
            seen["block_0"][step] = math.sqrt(grads["0.weight"].pow(2).sum().item() + grads["0.bias"].pow(2).sum().item())

            monitor.log_training(step, loss, video_loss=loss * 0.75, audio_loss=loss * 0.25)
            monitor.log_loss_components(step, {"video_mse": loss * 0.75, "audio_mse": 0.25 * loss.item()})
            monitor.log_learning_rate(step, scheduler.get_last_lr(), scheduler.state_dict())
            monitor.log_performance(step, step_time_s=0.5, data_time_s=0.125)
            monitor.log_gradients(step, model.named_parameters(), seen["grad_norm"][step])
            monitor.log_histograms(step, model.named_parameters())
            monitor.log_parameter_stats(step, model.named_parameters())
            monitor.log_system(step)
            timesteps = torch.tensor([0.1, 0.4, 0.6, 0.9])
            noise = torch.ones(4, 2, 3, 4, 4)
            pred = noise + torch.tensor([0.1, 0.2, 0.3, 0.4]).view(4, 1, 1, 1, 1)
            monitor.log_diffusion(step, timesteps, pred, noise)
            monitor.log_noise_analysis(step, 2 * target + 1, target)
            monitor.log_noise_visualization(step, torch.randn(4, 2, 3, 4, 4), pred, noise + torch.randn_like(noise))
            if step == SAMPLE_STEP:
                frames = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8)
                audio = torch.sin(torch.linspace(0, 200, 1600))
                monitor.log_sample(step, "cat", frames, fps=8, audio=audio, sample_rate=8000, prompt="a cat")
            optimizer.step()
            scheduler.step()
        monitor.log_epoch_summary(STEPS - 1, 0, {"Loss": sum(seen["loss"].values()) / STEPS})
        monitor.log_learning_rate_schedule([(0, 0.1), (5, 0.05), (11, 0.025)])
    finally:
        monitor.logger.finish()
    return seen


def read_events(log_dir: Path) -> EventAccumulator:
    kinds = ("scalars", "images", "audio", "histograms", "tensors", "compressedHistograms")
    events = EventAccumulator(str(log_dir / "tensorboard"), size_guidance={kind: 0 for kind in kinds})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("tb_full")
    seen = fake_training(log_dir, TensorBoardFlags(**FLAGS_ON))
    return read_events(log_dir), seen


@pytest.fixture(scope="module")
def lean_run(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("tb_lean")
    fake_training(log_dir, TensorBoardFlags(**FLAGS_ON, **EXPENSIVE_OFF))
    return read_events(log_dir)


def steps_of(events: EventAccumulator, tag: str) -> list[int]:
    return [event.step for event in events.Scalars(tag)]


def value_at(events: EventAccumulator, tag: str, step: int) -> float:
    return next(event.value for event in events.Scalars(tag) if event.step == step)


def all_tags(events: EventAccumulator) -> set[str]:
    tags = events.Tags()
    return {tag for kind in ("scalars", "images", "audio", "histograms", "tensors") for tag in tags[kind]}


def test_every_category_writes_under_its_prefix(full_run):
    events, _ = full_run
    prefixes = {tag.split("/", 1)[0] for tag in all_tags(events)}
    assert prefixes == set(Category.ALL)


@pytest.mark.parametrize(
    ("tag", "steps"),
    [
        ("01_Training/Loss", LOG_STEPS),
        ("01_Training/Loss_Smoothed", LOG_STEPS),
        ("01_Training/Audio_Loss", LOG_STEPS),
        ("02_Loss_Components/video_mse", LOG_STEPS),
        ("04_Learning_Rate/Learning_Rate", LOG_STEPS),
        ("04_Learning_Rate/Scheduler/last_epoch", LOG_STEPS),
        ("04_Learning_Rate/Schedule", [0, 5, 11]),
        ("05_Performance/Step_Time_s", LOG_STEPS),
        ("11_Gradient_Stats/Total_Gradient_Norm", LOG_STEPS),
        ("14_System/rss_mb", LOG_STEPS),
        ("06_Diffusion/Noise_Prediction_MSE", DIAGNOSTIC_STEPS),
        ("07_Noise_Analysis/Correlation", DIAGNOSTIC_STEPS),
        ("09_Parameter_Stats/Norm/0.weight", DIAGNOSTIC_STEPS),
        ("03_Epoch_Summary/Loss", [STEPS - 1]),
        ("08_Model_Architecture/Total/Params", [0]),
    ],
)
def test_scalars_are_written_at_their_steps(full_run, tag, steps):
    events, _ = full_run
    assert steps_of(events, tag) == steps


def test_scalar_values_match_the_training_run(full_run):
    events, seen = full_run
    for step in LOG_STEPS:
        assert value_at(events, "01_Training/Loss", step) == pytest.approx(seen["loss"][step], rel=1e-6)
        smoothed = sum(seen["loss"][s] for s in range(step + 1)) / (step + 1)  # window 100 > steps: every loss so far
        assert value_at(events, "01_Training/Loss_Smoothed", step) == pytest.approx(smoothed, rel=1e-6)
        assert value_at(events, "01_Training/Video_Loss", step) == pytest.approx(0.75 * seen["loss"][step], rel=1e-6)
        assert value_at(events, "11_Gradient_Stats/Total_Gradient_Norm", step) == pytest.approx(seen["grad_norm"][step], rel=1e-5)
        assert value_at(events, "11_Gradient_Stats/Block_Gradient_Norm/0", step) == pytest.approx(seen["block_0"][step], rel=1e-5)
        assert value_at(events, "11_Gradient_Stats/Params_Without_Grad", step) == 0
    assert [value_at(events, "04_Learning_Rate/Learning_Rate", step) for step in LOG_STEPS] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    )
    assert value_at(events, "05_Performance/Step_Time_s", 0) == 0.5
    assert value_at(events, "05_Performance/Data_Time_Share", 0) == 0.25
    assert value_at(events, "08_Model_Architecture/Total/Params", 0) == 8 * 16 + 16 + 16 * 4 + 4  # head counted once
    assert value_at(events, "08_Model_Architecture/head/Params", 0) == 16 * 4 + 4
    assert value_at(events, "08_Model_Architecture/head/Trainable_Percent", 0) == 100.0
    assert value_at(events, "03_Epoch_Summary/Epoch", STEPS - 1) == 0


def test_diffusion_buckets_hold_mse_and_prediction_snr(full_run):
    events, _ = full_run
    # sample i has timestep (0.1, 0.4, 0.6, 0.9)[i] and error (0.1, 0.2, 0.3, 0.4)[i] against a target of ones
    for span, error in [("t0.00-0.25", 0.1), ("t0.25-0.50", 0.2), ("t0.50-0.75", 0.3), ("t0.75-1.00", 0.4)]:
        assert value_at(events, f"06_Diffusion/MSE/{span}", 4) == pytest.approx(error**2, rel=1e-5)
        snr = value_at(events, f"06_Diffusion/Signal_to_Noise_Ratio/{span}", 4)
        assert snr == pytest.approx(10 * math.log10(1 / error**2), rel=1e-5)
    assert value_at(events, "06_Diffusion/Noise_Prediction_MSE", 0) == pytest.approx(0.3 / 4 * 1.0, rel=1e-5)
    assert value_at(events, "07_Noise_Analysis/Correlation", 0) == pytest.approx(1.0, abs=1e-5)
    assert value_at(events, "07_Noise_Analysis/Std_Ratio", 0) == pytest.approx(2.0, rel=1e-5)


def gif_frames(image) -> list[Image.Image]:
    """The decoded frames of a video summary (torch's add_video stores an animated GIF)."""
    return [frame.convert("RGB") for frame in ImageSequence.Iterator(Image.open(BytesIO(image.encoded_image_string)))]


def test_videos_audio_histograms_and_text_are_present(full_run):
    events, _ = full_run
    tags = events.Tags()
    (sample,) = events.Images("12_Generated_Samples/cat/Video")
    assert (sample.step, sample.width, sample.height) == (SAMPLE_STEP, 16, 16)
    assert len(gif_frames(sample)) == 5
    assert [(clip.step, clip.sample_rate, clip.length_frames) for clip in events.Audio("12_Generated_Samples/cat/Audio")] == [
        (SAMPLE_STEP, 8000, 1600)
    ]
    videos = events.Images("13_Noise_Visualization/Noisy_Predicted_Target_Error")
    assert [(video.step, video.width, video.height) for video in videos] == [(s, 4 * 64, 64) for s in DIAGNOSTIC_STEPS]
    frames = gif_frames(videos[0])
    assert len(frames) == 3  # the latents' F frames
    left, right = frames[0].getpixel((10, 10)), frames[0].getpixel((64 + 10, 10))
    assert left[0] == left[1] == left[2] and right[0] == right[1] == right[2]  # grey panels
    assert {"10_Parameter_Histograms/Weights/0.weight", "10_Parameter_Histograms/Gradients/2.bias"} <= set(tags["histograms"])
    assert [event.step for event in events.Histograms("10_Parameter_Histograms/Gradients/0.weight")] == DIAGNOSTIC_STEPS
    config_text = events.Tensors("15_Configuration/Config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert config_text.startswith("```yaml\ntrain:\n  lr: 0.1\n  steps: 12\n")
    hparams_text = events.Tensors("15_Configuration/Hparams/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| train.lr | 0.1 |" in hparams_text
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
    assert "12_Generated_Samples/cat/Prompt/text_summary" in tags["tensors"]


def test_metrics_jsonl_holds_every_scalar_at_its_step_in_step_order(full_run, tmp_path_factory):
    events, _ = full_run
    log_dir = Path(events.path).parent
    records = [json.loads(line) for line in (log_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in records]
    assert steps == sorted(steps)
    logged = {(name, record["step"]) for record in records for name in record["metrics"]}
    scalars = {(tag, event.step) for tag in events.Tags()["scalars"] for event in events.Scalars(tag)}
    forecast = {(tag, step) for tag, step in scalars if tag == "04_Learning_Rate/Schedule"}
    assert scalars - forecast == logged  # TensorBoard's scalars are the stream; the schedule is a forecast
    assert ("04_Learning_Rate/Schedule", 11) in forecast


def test_turning_expensive_flags_off_removes_their_tags(full_run, lean_run):
    full_prefixes = {tag.split("/", 1)[0] for tag in all_tags(full_run[0])}
    lean_prefixes = {tag.split("/", 1)[0] for tag in all_tags(lean_run)}
    switched_off = {"05_Performance", "09_Parameter_Stats", "10_Parameter_Histograms", "12_Generated_Samples",
                    "13_Noise_Visualization", "14_System"}  # fmt: skip
    assert lean_prefixes == full_prefixes - switched_off
    assert steps_of(lean_run, "01_Training/Loss") == LOG_STEPS


def test_should_log_follows_flags_and_without_tensorboard_only_the_cheap_numbers_are_made(tmp_path):
    flags = TensorBoardFlags(log_every=3, diagnostic_every=5, histograms=False)
    quiet = open_monitor(tmp_path / "quiet", flags, tensorboard=False)
    assert quiet.should_log(0, Category.TRAINING) and not quiet.should_log(0, Category.DIFFUSION)
    assert not quiet.should_log(0, Category.SAMPLES) and not quiet.should_log(0, Category.CONFIGURATION)
    quiet.log_training(0, 1.0)
    quiet.log_noise_visualization(0, torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
    quiet.logger.finish()
    (record,) = [json.loads(line) for line in (tmp_path / "quiet" / "metrics.jsonl").read_text().splitlines()]
    assert record["metrics"] == {"01_Training/Loss": 1.0, "01_Training/Loss_Smoothed": 1.0}
    assert not (tmp_path / "quiet" / "tensorboard").exists()
    live = open_monitor(tmp_path / "live", flags)
    assert [step for step in range(10) if live.should_log(step, Category.TRAINING)] == [0, 3, 6, 9]
    assert [step for step in range(10) if live.should_log(step, Category.DIFFUSION)] == [0, 5]
    assert not live.should_log(0, Category.HISTOGRAMS)
    assert live.should_log(7, Category.SAMPLES)
    live.logger.finish()


def test_block_of_parameter_cuts_after_the_block_index():
    assert block_of_parameter("transformer_blocks.3.attn1.to_q.lora_A.weight") == "transformer_blocks.3"
    assert block_of_parameter("audio_transformer_blocks.12.ff.net.0.proj.lora_B.weight") == "audio_transformer_blocks.12"
    assert block_of_parameter("proj_in.lora_A.weight") == "proj_in"
    assert block_of_parameter("0.weight") == "0"


def test_bad_inputs_raise_errors_that_say_how_to_fix_them(tmp_path):
    flags = TensorBoardFlags(log_every=1, diagnostic_every=1)
    monitor = open_monitor(tmp_path, flags)
    try:
        latents = torch.zeros(2, 4)
        with pytest.raises(TensorBoardError, match="sigmas in \\[0, 1\\].*num_train_timesteps"):
            monitor.log_diffusion(0, torch.tensor([10.0, 999.0]), latents, latents)
        with pytest.raises(TensorBoardError, match="uint8 frames shaped \\(T, H, W, 3\\)"):
            monitor.log_sample(0, "bad", torch.rand(3, 8, 8, 3), fps=8)
        with pytest.raises(TensorBoardError, match="mono audio"):
            monitor.log_sample(0, "stereo", torch.zeros(3, 8, 8, 3, dtype=torch.uint8), 8, torch.zeros(2, 100), 8000)
        with pytest.raises(TensorBoardError, match="one shape"):
            monitor.log_noise_analysis(0, torch.zeros(2, 3), torch.zeros(3, 2))
    finally:
        monitor.logger.finish()
    with pytest.raises(TensorBoardError, match="log_every is 0"):
        TensorBoardFlags(log_every=0)


@pytest.mark.parametrize(
    ("flag", "removed"),
    [
        ("histograms", {"10_Parameter_Histograms"}),
        ("parameter_tracking", {"09_Parameter_Stats"}),
        ("video_logging", {"12_Generated_Samples"}),
        ("noise_visualization", {"13_Noise_Visualization"}),
        ("profiling", {"05_Performance", "14_System"}),
    ],
)
def test_each_flag_removes_only_its_own_categories(tmp_path, flag, removed):
    fake_training(tmp_path, TensorBoardFlags(**FLAGS_ON, **{flag: False}))
    prefixes = {tag.split("/", 1)[0] for tag in all_tags(read_events(tmp_path))}
    assert prefixes == set(Category.ALL) - removed


def test_a_log_call_is_one_event_and_histograms_are_those_add_histogram_makes(tmp_path):
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    from toolkit.logging.sinks import TensorBoardSink
    from toolkit.logging.sinks.tensorboard import HISTOGRAM_BUCKETS

    torch.manual_seed(0)
    weights = {"10_Parameter_Histograms/Weights/a": torch.randn(8, 16), "10_Parameter_Histograms/Weights/b": torch.randn(5)}
    batched = TensorBoardSink(tmp_path / "batched")
    batched.log({"01_Training/Loss": 0.5, "04_Learning_Rate/Learning_Rate": 1e-4, "14_System/rss_mb": 512.0}, step=3)
    batched.add_histograms(weights, step=3)
    batched.close()
    one_by_one = TensorBoardSink(tmp_path / "one_by_one")
    for tag, tensor in weights.items():
        one_by_one.writer.add_histogram(tag, tensor, 3, bins=HISTOGRAM_BUCKETS)
    one_by_one.close()

    def summaries(folder: Path) -> list:
        (events_file,) = folder.glob("events.out.tfevents.*")
        return [event for event in LegacyEventFileLoader(str(events_file)).Load() if event.HasField("summary")]

    scalars, histograms = summaries(tmp_path / "batched")
    assert scalars.step == histograms.step == 3
    assert {value.tag: value.simple_value for value in scalars.summary.value} == pytest.approx(
        {"01_Training/Loss": 0.5, "04_Learning_Rate/Learning_Rate": 1e-4, "14_System/rss_mb": 512.0}
    )
    expected = {value.tag: value.histo for event in summaries(tmp_path / "one_by_one") for value in event.summary.value}
    written = {value.tag: value.histo for value in histograms.summary.value}
    assert written == expected
    for tag, tensor in weights.items():  # TensorBoard's 30 equal buckets from min to max, not ~500 exponential ones
        histo = written[tag]
        assert (histo.min, histo.max, histo.num) == (tensor.min().item(), tensor.max().item(), tensor.numel())
        assert sum(histo.bucket) == tensor.numel() and len(histo.bucket) <= HISTOGRAM_BUCKETS + 1
        assert histo.bucket_limit[-1] == pytest.approx(tensor.max().item())


def test_a_large_sample_goes_to_tensorboard_as_a_preview_of_its_longest_side(tmp_path):
    """A sample's video is a preview at most SAMPLE_PREVIEW_SIDE (256) pixels on its longest side, aspect kept; the
    run's mp4 is the sample itself. A GIF of 121 frames at 768x512 was 54 MB and 9.9 s to encode."""
    from toolkit.monitoring.tensorboard import SAMPLE_PREVIEW_SIDE

    ramp = torch.linspace(0, 255, 512)  # dark on the left, bright on the right; brighter frame by frame
    frames = (ramp.view(1, 1, 512, 1) * torch.tensor([1 / 3, 2 / 3, 1]).view(3, 1, 1, 1)).round().to(torch.uint8)
    frames = frames.expand(3, 96, 512, 3).contiguous()
    monitor = open_monitor(tmp_path, TensorBoardFlags(**FLAGS_ON))
    monitor.log_sample(0, "wide", frames, fps=8)
    monitor.log_sample(0, "small", frames[:, :16, :16], fps=8)
    monitor.logger.finish()
    events = read_events(tmp_path)
    (wide,) = events.Images("12_Generated_Samples/wide/Video")
    assert SAMPLE_PREVIEW_SIDE == 256 and (wide.width, wide.height) == (256, 48)
    shown = gif_frames(wide)
    assert len(shown) == 3
    left, middle, right = (shown[2].getpixel((x, 24))[0] for x in (0, 128, 255))
    assert left < 10 and 110 < middle < 145 and right > 245  # the ramp, averaged two columns to one
    (small,) = events.Images("12_Generated_Samples/small/Video")
    assert (small.width, small.height) == (16, 16)  # already small: as it was


def test_sample_preview_averages_areas_and_leaves_small_frames_alone():
    from toolkit.monitoring.tensorboard_values import sample_preview

    frames = torch.tensor([[0, 100], [50, 250]], dtype=torch.uint8).repeat_interleave(2, 0).repeat_interleave(2, 1)
    frames = frames.view(1, 4, 4, 1).expand(2, 4, 4, 3)
    assert sample_preview(frames, 4) is frames
    preview = sample_preview(frames, 2)
    assert preview.shape == (2, 2, 2, 3) and preview.dtype == torch.uint8
    assert preview[0, :, :, 0].tolist() == [[0, 100], [50, 250]]
