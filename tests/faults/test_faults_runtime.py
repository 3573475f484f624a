"""Fault suite, runtime half: broken media, kill -9 in a save, a trace that cannot be written.

Each is a category the config checks cannot reach (the file's bytes, the process's life, the disk at
run time). What is about the process (a signal, a kill) runs run.py in a child process; the rest (broken
media, found while encoding; the resume after the kill; a trace file that cannot be opened) runs
run.py's main() in this process (`run_here`), which gives the same exit code and messages. Each asserts
the exit code and that the message names the file; none asserts a duration. Non-finite training
(exit 1, the step and the last good checkpoint named, no NaN in any file) is
tests/trainer/test_trainer_nonfinite.py's, through run.main; SIGTERM in training (finish the step, save, exit
143, resume to the uninterrupted LoRA) is tests/trainer/test_trainer_resume.py's.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.faults.conftest import (
    REPO_ROOT,
    copy_clips,
    run_here,
    run_probe,
    training_job,
    write_yaml,
)


@dataclass(frozen=True)
class MediaFault:
    name: str
    spoil: Callable[[Path], Path]  # makes the clips folder bad; returns the file the message must name
    expected: str
    dataset: dict | None = None


def _random_bytes(clips: Path) -> Path:
    bad = clips / "demo_01.mp4"
    bad.write_bytes(bytes(range(256)) * 16)
    return bad


def _truncated(clips: Path) -> Path:
    bad = clips / "demo_01.mp4"
    bad.write_bytes(bad.read_bytes()[:2000])
    return bad


MEDIA_CASES = [
    MediaFault("random_bytes_named_mp4", _random_bytes, "cannot open as a video"),
    MediaFault("truncated_mp4", _truncated, "demo_01.mp4"),
]  # a clip without an audio track, or shorter than num_frames: test_faults_media.py (found before loading)


@pytest.mark.parametrize("case", MEDIA_CASES, ids=[case.name for case in MEDIA_CASES])
def test_broken_media_stops_the_run_naming_the_file(case: MediaFault, tmp_path: Path, tiny_ready, capsys) -> None:
    clips = copy_clips(tmp_path / "clips", count=2)
    bad = case.spoil(clips)
    job = training_job(tmp_path, clips)
    job["config"]["process"][0]["datasets"][0].update(case.dataset or {})
    outcome = run_here([str(write_yaml(tmp_path / "job.yaml", job))], capsys)
    assert outcome.returncode == 1, outcome.output[-3000:]
    assert f"error: {bad}: " in outcome.stderr and case.expected in outcome.stderr, outcome.stderr[-3000:]
    assert "Traceback" not in outcome.stderr
    assert (tmp_path / "out" / "fault").is_dir()  # the job started: found while encoding, not by the checks before
    assert not list((tmp_path / "out").rglob("*.safetensors"))  # stopped before training: nothing saved


def test_unwritable_trace_file_is_dropped_with_a_warning_and_the_run_goes_on(tmp_path: Path, tiny_ready, capsys) -> None:
    job = yaml.safe_load((REPO_ROOT / "config" / "examples" / "generate_ltx2_tiny.yaml").read_text())
    job["config"]["process"][0]["output_folder"] = str(tmp_path / "out")
    job["config"]["process"][0]["generate"]["prompts"] = ["a red square"]
    run_folder = tmp_path / "out" / job["config"]["name"]
    (run_folder / "trace.jsonl").mkdir(parents=True)  # a folder where the trace file goes: it cannot be opened
    outcome = run_here([str(write_yaml(tmp_path / "job.yaml", job))], capsys)
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert f"cannot write {run_folder / 'trace.jsonl'}" in outcome.stderr, outcome.stderr[-3000:]
    assert "[VERBOSE]" in outcome.stdout  # the console sink still runs
    assert (run_folder / "trace.json").stat().st_size > 0  # and so does the other file sink
    assert [clip.name for clip in run_folder.glob("*.mp4")] == ["000_42.mp4"]


@pytest.mark.slow
def test_kill_9_in_a_save_keeps_the_last_checkpoint_and_the_same_config_resumes(tmp_path: Path, tiny_ready, capsys) -> None:
    from extensions_built_in.sd_trainer import checkpoints

    config = write_yaml(tmp_path / "job.yaml", training_job(tmp_path, copy_clips(tmp_path / "clips")))
    run_folder = tmp_path / "out" / "fault"
    killed = run_probe([str(config)], cwd=tmp_path, env={"FAULT_KILL_IN_SAVE": "2"})  # the save of step 4
    assert killed.returncode == -signal.SIGKILL, killed.output[-3000:]
    assert killed.probe is None  # died on the spot: nothing ran after the kill
    saves = run_folder / "checkpoints"
    assert sorted(path.name for path in saves.iterdir()) == [".step_000000004.partial", "step_000000002"]
    # the LoRA, and the training state's file opened for torch.save, which died before writing to it
    partial = saves / ".step_000000004.partial"
    assert sorted(path.name for path in partial.iterdir()) == ["lora.safetensors", "training_state.pt"]
    assert (partial / "training_state.pt").stat().st_size == 0
    assert checkpoints.latest_checkpoint(run_folder) == saves / "step_000000002"
    step_2 = checkpoints.load_training_state(saves / "step_000000002")
    assert step_2.step == 2 and step_2.lora_state and step_2.optimizer_state["state"]  # Adam moments of 2 steps

    # The same config again (run.py's main() in this process: the kill above is what needed a process of its own).
    resumed = run_here([str(config)], capsys)
    assert resumed.returncode == 0, resumed.output[-3000:]
    assert "Resuming fault from step 2" in (run_folder / "train.log").read_text()
    assert (run_folder / "fault.safetensors").is_file()
    assert sorted(path.name for path in saves.iterdir()) == ["step_000000002", "step_000000004"]  # no partial left
    assert checkpoints.load_training_state(saves / "step_000000004").step == 4
    assert not (run_folder / "run.lock").exists()  # the dead run's lock was taken over, then removed
