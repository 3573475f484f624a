"""The fault suite's runner: run.py in a child process, and what it reports about itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.faults.probe_run import PROBE_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "probe_run.py"
DEMO_CLIPS = REPO_ROOT / "data" / "demo_clips"


@dataclass
class Outcome:
    """A finished run.py: exit code, output, and the probe's report (None when it died before writing it)."""

    returncode: int
    stdout: str
    stderr: str
    probe: dict[str, bool] | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_probe(args: list[str], cwd: Path, timeout: float = 900, env: dict[str, str] | None = None) -> Outcome:
    result = subprocess.run(
        [sys.executable, str(PROBE), *args],
        cwd=cwd,
        env={**child_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang guard; no test here asserts how long anything takes
    )
    return _outcome(result.returncode, result.stdout, result.stderr)


def run_here(args: list[str], capsys) -> Outcome:
    """run.py's main() in this process, for a case about what a run does rather than about its process (a
    signal, a kill, what was imported): no interpreter to start, the same exit code and messages. The tracer
    and the log handlers the run set up are closed after it, as at the end of a process."""
    import run
    from toolkit.logging import LogManager
    from toolkit.trace import reset_tracer

    try:
        code = run.main(args)
    finally:
        reset_tracer()
        LogManager.get_instance().cleanup()
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err, None)


def start_probe(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(
            [sys.executable, str(PROBE), *args], cwd=cwd, env=child_env(), stdout=handle, stderr=subprocess.STDOUT
        )


def outcome_from_log(returncode: int, log: Path) -> Outcome:
    return _outcome(returncode, "", log.read_text())


def _outcome(returncode: int, stdout: str, stderr: str) -> Outcome:
    probe = None
    lines = [line for line in stderr.splitlines() if line.startswith(PROBE_PREFIX)]
    if lines:
        probe = json.loads(lines[-1][len(PROBE_PREFIX) :])
    return Outcome(returncode, stdout, stderr, probe)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def training_job(folder: Path, clips: Path = DEMO_CLIPS, **process: Any) -> dict[str, Any]:
    """A small valid sd_trainer job writing under `folder/out`; `process` keys replace its sections."""
    base = {
        "type": "sd_trainer",
        "training_folder": str(folder / "out"),
        "device": "cpu",
        "model": {"name_or_path": "tiny-ltx2", "arch": "ltx2", "dtype": "fp32"},
        "network": {"type": "lora", "linear": 4, "linear_alpha": 4},
        "save": {"dtype": "float32", "save_every": 2, "max_step_saves_to_keep": 3},
        "datasets": [{"folder_path": str(clips), "num_frames": 9, "resolution": [64]}],
        "train": {"steps": 4, "lr": 1e-3, "dtype": "fp32", "disable_sampling": True},
        "logging": {"use_tensorboard": False},
    }
    base.update(process)
    return {"job": "extension", "config": {"name": "fault", "process": [base]}, "meta": {"name": "[name]"}}


def write_yaml(path: Path, content: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


def copy_clips(folder: Path, count: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for clip in sorted(DEMO_CLIPS.glob("*.mp4"))[:count]:
        shutil.copy2(clip, folder / clip.name)
        shutil.copy2(clip.with_suffix(".txt"), folder / clip.with_suffix(".txt").name)
    return folder


@pytest.fixture(scope="session")
def tiny_ready(tiny_model_dir) -> Path:
    """The tiny model built once before any child process needs it (they share LTX2_TRACE_CACHE)."""
    return tiny_model_dir


@pytest.fixture(scope="session")
def trained_run(tiny_ready, tmp_path_factory) -> Path:
    """One finished 4-step run (`training_job`) with saves at steps 2 and 4 in `out/fault/`, trained once for the
    cases that need a run to resume; each copies it (`copy_trained`) and leaves this one as it is."""
    import run
    from toolkit.logging import LogManager
    from toolkit.trace import reset_tracer

    folder = tmp_path_factory.mktemp("trained")
    config = write_yaml(folder / "job.yaml", training_job(folder, copy_clips(folder / "clips")))
    try:  # run.py's main() in this process: what is tested is what the run left, not the process that left it
        assert run.main([str(config)]) == run.EXIT_OK
    finally:
        reset_tracer()
        LogManager.get_instance().cleanup()
    return folder


def copy_trained(trained: Path, folder: Path) -> tuple[dict[str, Any], Path]:
    """The trained run copied to `folder/out/fault`: (its job, to edit and write to folder/job.yaml; the run folder).

    The job trains on the trained run's clips, which the cases never change.
    """
    shutil.copytree(trained / "out", folder / "out")
    return training_job(folder, trained / "clips"), folder / "out" / "fault"
