"""Helpers for the sd_trainer tests: configs written from the tiny example, trainers set up without training.

Every config starts from `config/examples/train_lora_ltx2_tiny.yaml` so the
tests exercise what users run; each test changes only what it is about
(dotted keys under `config.process[0]`, e.g. ``{"train.steps": 4}``).
Sampling and the verbose trace are off unless a test switches them on.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_tiny.yaml"
DEMO_CLIPS = REPO_ROOT / "data" / "demo_clips"


def copy_clips(folder: Path, count: int) -> Path:
    """The first `count` demo clips and their captions, copied to `folder` (tests may touch or corrupt them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for clip in sorted(DEMO_CLIPS.glob("*.mp4"))[:count]:
        shutil.copy2(clip, folder / clip.name)
        shutil.copy2(clip.with_suffix(".txt"), folder / clip.with_suffix(".txt").name)
    return folder


def _set_dotted(mapping: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        mapping = mapping[int(part)] if isinstance(mapping, list) else mapping.setdefault(part, {})
    if isinstance(mapping, list):
        mapping[int(last)] = value
    else:
        mapping[last] = value


def write_config(folder: Path, settings: dict[str, Any] | None = None, name: str = "trainer_test") -> Path:
    """A YAML job in `folder` from the tiny example; `settings` are dotted keys under config.process[0]."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(TINY_EXAMPLE.read_text())
    raw["config"]["name"] = name
    process = raw["config"]["process"][0]
    defaults = {
        "training_folder": str(folder / "output"),
        "datasets.0.folder_path": str(DEMO_CLIPS),
        "train.disable_sampling": True,
        "model.verbose": False,
        "logging.use_tensorboard": False,
    }
    for key, value in {**defaults, **(settings or {})}.items():
        _set_dotted(process, key, value)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def build_trainer(config_path: Path):
    """The SDTrainer of a config file, as run.py builds it (nothing loaded yet)."""
    from toolkit.config import load_config
    from toolkit.job import Job

    return Job(load_config(config_path), config_path).processes[0]


class _LoopReached(Exception):
    """Raised in place of the training loop, so `run()` stops right before the first step."""


def set_up_trainer(config_path: Path):
    """An SDTrainer with every phase of `run()` before the training loop done, by `run()` itself.

    Going through `run()` (rather than repeating its phases here) keeps these
    tests on the real set-up order: load, encode, unload the text encoder,
    attach the LoRA, resume. Tests then call `hook_train_loop`, `save`, or
    `_train` (the loop) directly.
    """
    trainer = build_trainer(config_path)

    def stop_before_loop() -> None:
        raise _LoopReached

    trainer._train = stop_before_loop
    with pytest.raises(_LoopReached):
        trainer.run()
    del trainer._train  # the class's loop again
    return trainer


def train_steps(trainer, count: int) -> list:
    """`count` optimizer steps from the trainer's current step, as the loop does them."""
    results = []
    for _ in range(count):
        results.append(trainer.hook_train_loop(trainer.step))
        trainer.step += 1
    return results


def lora_tensors(trainer) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in trainer.network.state_dict().items()}


@pytest.fixture(autouse=True)
def _trainer_env(tiny_cache_dir) -> Iterator[None]:
    """`tiny-ltx2` resolves to the session's tiny model; each test ends with the null tracer and no log handlers."""
    from toolkit.logging import LogManager
    from toolkit.trace import reset_tracer

    assert os.environ["LTX2_TRACE_CACHE"] == str(tiny_cache_dir)
    reset_tracer()
    yield
    reset_tracer()
    LogManager.get_instance().cleanup()


@pytest.fixture(scope="session")
def tiny_ready(tiny_model_dir) -> Path:
    """Build the tiny model once before any subprocess needs it (they share LTX2_TRACE_CACHE)."""
    return tiny_model_dir


def run_cli(args: list[str], cwd: Path = REPO_ROOT, timeout: float = 1800) -> subprocess.CompletedProcess:
    """`python run.py ARGS` with INFO logging on, in a child process that inherits LTX2_TRACE_CACHE.

    `timeout` only guards against a hang: a loaded machine may take many times an idle one's time.
    """
    return subprocess.run(
        [sys.executable, "-c", _CLI_WITH_LOGGING, *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args: list[str], log_path: Path) -> subprocess.Popen:
    """Like run_cli, in the background; stdout and stderr go to `log_path`."""
    handle = open(log_path, "w")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _CLI_WITH_LOGGING, *args],
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    finally:
        handle.close()


def interrupt_when(
    process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 1800, signum: int = signal.SIGINT
) -> None:
    """Send `signum` (SIGINT: Ctrl-C) once `ready()` is true; fail if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit code {process.returncode}) before it could be interrupted")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"not ready to interrupt after {timeout} s")
        time.sleep(0.02)
    process.send_signal(signum)


# run.py's main() with INFO logging, so the trainer's log lines (Resuming ..., Done ...) reach stderr.
_CLI_WITH_LOGGING = (
    "import logging, sys; logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s'); "
    "sys.argv[0] = 'run.py'; import run; sys.exit(run.main(sys.argv[1:], freeze_imports=True))"
)


def child_env() -> dict[str, str]:
    """This environment (LTX2_TRACE_CACHE included) with the repo importable and one BLAS thread."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class RecordedPredictions:
    """Wraps `model.get_noise_prediction` and keeps each call's inputs and outputs, in call order."""

    def __init__(self, model):
        self.calls: list[dict] = []
        self._predict = model.get_noise_prediction
        model.get_noise_prediction = self

    def __call__(self, video, audio, sigmas, prompt, fps, video_sigmas=None):
        prediction = self._predict(video, audio, sigmas, prompt, fps=fps, video_sigmas=video_sigmas)
        self.calls.append(
            {
                "noisy_video": video.detach(),
                "noisy_audio": audio.detach(),
                "sigmas": sigmas,
                "video_sigmas": video_sigmas,
                "prompt": prompt,
                "predicted_video": prediction.video,
                "predicted_audio": prediction.audio,
            }
        )
        return prediction
