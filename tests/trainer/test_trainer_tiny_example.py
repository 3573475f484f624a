"""The tiny example, end to end, as a user runs it: python run.py config/examples/train_lora_ltx2_tiny.yaml.

The file runs as it is, with its training folder and, through `--set` as a user shortens a run, its
cadences scaled down: 4 steps instead of 100, a sample before training and at the end (every 4 instead
of every 50), a save at step 2 (every 2 instead of 50). Every phase it goes through at 100 steps is
still reached (load, encode, train, sample, save, the verbose trace of each); what 100 steps add is
more of the same steps, which is what benchmarks/bench_cli.py times.
"""

from __future__ import annotations

import re
import subprocess
import sys

import av
import pytest
import yaml
from safetensors.torch import load_file

from tests.trainer.conftest import REPO_ROOT, TINY_EXAMPLE, child_env

STEPS, SAMPLE_EVERY, SAVE_EVERY = 4, 4, 2
SHORTER = [f"config.process.0.train.steps={STEPS}", f"config.process.0.sample.sample_every={SAMPLE_EVERY}",
           f"config.process.0.save.save_every={SAVE_EVERY}"]
TRACED_PHASES = [
    "load_component",
    "encode_images",
    "encode_audio",
    "get_prompt_embeds",
    "unload_text_encoder",
    "hook_train_loop",
    "predict_noise",
    "get_noise_prediction",
    "generate_single_image",
    "save_model",
]


@pytest.mark.slow
def test_tiny_example_trains_samples_and_traces(tmp_path, tiny_ready):
    example = yaml.safe_load(TINY_EXAMPLE.read_text())
    name = example["config"]["name"]
    result = subprocess.run(
        [sys.executable, "run.py", str(TINY_EXAMPLE.relative_to(REPO_ROOT)),
         "--set", f"config.process.0.training_folder={tmp_path}", *(arg for o in SHORTER for arg in ("--set", o))],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard only; how long it takes is benchmarks/bench_cli.py's to say
    )
    assert result.returncode == 0, result.stderr[-3000:]

    run_folder = tmp_path / name
    lora = load_file(run_folder / f"{name}.safetensors")
    assert lora and all(key.startswith("diffusion_model.") for key in lora)  # save.format: comfy, the default
    assert max(t.float().abs().max() for k, t in lora.items() if "lora_B" in k) > 0

    prompts = len(example["config"]["process"][0]["sample"]["prompts"])
    samples = sorted((run_folder / "samples").glob("*.mp4"))
    # a baseline before training and the end, one clip per prompt
    assert [sample.name for sample in samples] == [f"{step:09d}_{i}.mp4" for step in (0, STEPS) for i in range(prompts)]
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == [f"step_{s:09d}" for s in (SAVE_EVERY, STEPS)]
    for sample in samples:
        with av.open(str(sample)) as container:
            (video,) = container.streams.video
            (audio,) = container.streams.audio
            assert (video.width, video.height) == (64, 64)
            assert video.frames == 9 or sum(1 for _ in container.decode(video=0)) == 9
            assert audio.rate > 0

    output = result.stdout + result.stderr
    verbose = [line for line in output.splitlines() if line.startswith("[VERBOSE]")]
    for phase in TRACED_PHASES:
        assert any(re.match(rf"\[VERBOSE\]\s+{phase}\b", line) for line in verbose), phase
