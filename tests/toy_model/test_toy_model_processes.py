"""A second arch through the processes: the toy model trains, samples and saves through sd_trainer, and generates
through generate, with no change to either (they reach it only through the registry and the model interface)."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.toy_model.toy_model import ARCH, ToyModel, register_toy_arch
from toolkit.config import parse_config
from toolkit.data import read_video
from toolkit.errors import RunFolderInUse
from toolkit.job import Job
from toolkit.network.formats import load_lora_state
from toolkit.run_lock import LOCK_FILE

DEMO_CLIPS = "data/demo_clips"
PROMPT = "a red square moving left to right"
SAMPLING = {"width": 32, "height": 48, "num_frames": 5, "fps": 24, "sample_steps": 3, "guidance_scale": 2.0, "seed": 7}
STEPS = 6


def _job(process: dict, name: str) -> Job:
    register_toy_arch()
    model = {"name_or_path": "toy", "arch": ARCH, "dtype": "fp32"}
    return Job(parse_config({"job": "extension", "config": {"name": name, "process": [{**process, "model": model}]}}))


@pytest.fixture(autouse=True)
def _clean_run_state(tiny_cache_dir):
    """The toy's weights in the session's cache; each run's tracer and log handlers closed after it."""
    from toolkit.logging import LogManager
    from toolkit.trace import reset_tracer

    yield
    reset_tracer()
    LogManager.get_instance().cleanup()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    job = _job(
        {
            "type": "sd_trainer", "training_folder": str(folder), "device": "cpu",
            "logging": {"use_tensorboard": False, "log_every": 1},
            "network": {"type": "lora", "linear": 4, "linear_alpha": 4},
            "save": {"dtype": "float32", "save_every": 100},
            "datasets": [{"folder_path": DEMO_CLIPS, "num_frames": 5, "resolution": [32]}],
            "train": {"steps": STEPS, "lr": 2e-2, "seed": 3, "dtype": "fp32"},
            "sample": {**SAMPLING, "sample_every": 100, "walk_seed": False, "prompts": [PROMPT]},
        },
        "toy_lora",
    )
    job.run()
    return job.processes[0], folder / "toy_lora"


def test_the_toy_trains_through_sd_trainer_and_its_loss_falls(trained):
    trainer, run_folder = trained
    assert type(trainer.model) is ToyModel and trainer.step == STEPS
    records = [json.loads(line)["metrics"] for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    losses = [metrics["01_Training/Loss"] for metrics in records if "01_Training/Loss" in metrics]
    assert len(losses) == STEPS and all(math.isfinite(loss) for loss in losses)
    assert sum(losses[STEPS // 2 :]) < sum(losses[: STEPS // 2])  # falling, though each step draws other noise
    # The clips of the run at their own noise: lower with the trained LoRA than with the base weights.
    positions = list(range(STEPS))
    with torch.no_grad():
        trained_loss = trainer.step_loss.compute(positions, STEPS).loss.item()
        trainer.network.set_enabled(False)
        base_loss = trainer.step_loss.compute(positions, STEPS).loss.item()
        trainer.network.set_enabled(True)
    assert math.isfinite(base_loss) and trained_loss < base_loss


def test_the_toys_lora_file_holds_its_attention_layers_under_its_own_names(trained):
    trainer, run_folder = trained
    path = run_folder / "toy_lora.safetensors"
    tensors = load_file(str(path))
    modules = [f"blocks.{b}.{attn}.{proj}" for b in (0, 1) for attn in ("attn1", "attn2")
               for proj in ("to_q", "to_k", "to_v", "to_out.0")]
    assert sorted(tensors) == sorted(f"diffusion_model.{m}.lora_{ab}.weight" for m in modules for ab in "AB")
    loaded = load_lora_state(path, alpha=4.0, rank=4, keys=ToyModel.lora_file_keys())
    for name, tensor in trainer.network.state_dict().items():
        torch.testing.assert_close(loaded[name], tensor.cpu())


def test_sd_trainers_sampler_and_generate_write_the_toys_clip(trained, tmp_path):
    _, run_folder = trained
    baseline = read_video(run_folder / "samples" / "000000000_0.mp4", 5)  # before the first step: the base weights
    assert tuple(baseline.frames.shape) == (5, 48, 32, 3) and baseline.audio is not None
    assert (run_folder / "samples" / f"{STEPS:09d}_0.mp4").is_file()
    job = _job({"type": "generate", "output_folder": str(tmp_path), "generate": {**SAMPLING, "prompts": [PROMPT]}}, "toy_gen")
    (written,) = job.processes[0].run()
    generated = read_video(written, 5)
    assert written.name == "000_7.mp4" and torch.equal(generated.frames, baseline.frames)
    assert generated.audio.sample_rate == baseline.audio.sample_rate and generated.frames.float().std() > 0
    assert not (tmp_path / "toy_gen" / LOCK_FILE).exists()  # held while it generated, removed at the end


def test_generate_into_a_folder_another_run_holds_stops_before_loading(tmp_path, monkeypatch):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        folder = tmp_path / "toy_gen"
        folder.mkdir()
        lock = f'{{"pid": {holder.pid}, "host": "{socket.gethostname()}", "started_at": "2030-01-01T00:00:00+00:00", "argv": ["run.py", "train.yaml"]}}'
        (folder / LOCK_FILE).write_text(lock)
        loads = []
        monkeypatch.setattr(ToyModel, "load_model", lambda self, **kwargs: loads.append(kwargs))
        job = _job({"type": "generate", "output_folder": str(tmp_path), "generate": {**SAMPLING, "prompts": [PROMPT]}}, "toy_gen")
        with pytest.raises(RunFolderInUse, match=rf"{folder} is in use by another run \(pid {holder.pid} on .*run.py train.yaml"):
            job.processes[0].run()
        assert loads == [] and sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]
        assert (folder / LOCK_FILE).read_text() == lock  # the holder's lock untouched
    finally:
        holder.kill()
        holder.wait()
