"""The LTX-2.3 tiny examples (text-to-video and image-to-video), run in this process for two steps on one clip:
a LoRA that names its version, a state.json that does too, and samples with the 48 kHz audio of 2.3's vocoder."""

from __future__ import annotations

import json

import av
import pytest
from safetensors import safe_open

from tests.trainer.conftest import REPO_ROOT, copy_clips


@pytest.mark.parametrize(
    "example, name",
    [("train_lora_ltx2.3_tiny.yaml", "ltx2.3_tiny_lora"), ("train_lora_ltx2.3_i2v_tiny.yaml", "ltx2.3_i2v_tiny_lora")],
)
def test_ltx2_3_example_trains_saves_and_samples(tmp_path, example, name):
    from toolkit.config import load_config
    from toolkit.job import run_job

    path = REPO_ROOT / "config" / "examples" / example
    clips = copy_clips(tmp_path / "clips", 1)
    overrides = [
        f"config.process.0.training_folder={tmp_path / 'output'}",
        f"config.process.0.datasets.0.folder_path={clips}",
        "config.process.0.train.steps=2",
        "config.process.0.train.skip_first_sample=true",
        "config.process.0.save.save_every=2",
        "config.process.0.sample.sample_every=2",
        "config.process.0.sample.sample_steps=2",
        "config.process.0.model.verbose=false",
        "config.process.0.logging.use_tensorboard=false",
    ]
    config = load_config(path, overrides=overrides)
    assert config.config.process[0].model.name_or_path == "tiny-ltx2.3"
    run_job(config, path)

    run_folder = tmp_path / "output" / name
    with safe_open(str(run_folder / f"{name}.safetensors"), framework="pt") as handle:
        assert handle.metadata()["ltx2_version"] == "2.3"
        assert any("lora_B" in key for key in handle.keys())
        assert not any("to_gate_logits" in key for key in handle.keys())
    (save,) = (run_folder / "checkpoints").glob("step_*")
    assert json.loads((save / "state.json").read_text())["ltx2_arch"] == "ltx2.3"
    samples = sorted((run_folder / "samples").glob("*.mp4"))
    assert len(samples) == 2  # both prompts at step 2
    for sample in samples:
        with av.open(str(sample)) as container:
            assert container.streams.audio[0].sample_rate == 48000
            assert sum(1 for _ in container.decode(video=0)) == 9
