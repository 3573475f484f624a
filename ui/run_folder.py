"""Everything the UI shows of one run that the run folder holds, besides metrics and the trace.

The run folder is the interface (README "What a run writes"): LoRA files at the top, one folder per
save under checkpoints/, samples/<step>_<prompt>.mp4, train.log, the config saved with each
checkpoint, status.json, and run.lock while a run.py process holds the run. The UI adds two files
of its own: job.yaml or job.json (the config it queued) and console.log (what the run.py it started printed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from toolkit import run_lock
from toolkit.run_lock import LockHolder

JOB_FILES = ("job.yaml", "job.json")  # the config the UI queued (a JSON job keeps its parser)
CONSOLE_LOG = "console.log"
TRAIN_LOG = "train.log"
SAMPLE_NAME = re.compile(r"^(\d{9})_(\d+)\.(mp4|png|jpg|webp)$")
CHECKPOINT_NAME = re.compile(r"^step_(\d{9})$")
LOG_TAIL_BYTES = 32 * 1024


@dataclass(frozen=True)
class Sample:
    step: int
    prompt_index: int
    path: str  # relative to the run folder


@dataclass(frozen=True)
class RunFile:
    path: str  # relative to the run folder
    size: int


@dataclass(frozen=True)
class Checkpoint:
    step: int
    files: list[RunFile]


def read_lock(run_folder: Path) -> LockHolder | None:
    """The run's lock as the trainer's lock reads it, at once (a page never waits on a lock being written);
    None when there is none or it is unreadable: the pid in status.json still tells."""
    holder = run_lock.read_lock(run_folder, tries=1)
    return holder if holder is not None and holder.pid > 0 else None


def samples(run_folder: Path) -> list[Sample]:
    """Every sample the run wrote, by step then prompt."""
    folder = run_folder / "samples"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = SAMPLE_NAME.match(path.name)
        if match:
            found.append(Sample(int(match.group(1)), int(match.group(2)), f"samples/{path.name}"))
    return sorted(found, key=lambda sample: (sample.step, sample.prompt_index))


def lora_files(run_folder: Path) -> list[RunFile]:
    """The LoRA files at the top of the run folder (final and per-save), newest name last."""
    return sorted(
        (RunFile(path.name, path.stat().st_size) for path in run_folder.glob("*.safetensors") if path.is_file()),
        key=lambda file: file.path,
    )


def save_folders(run_folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the completed saves (checkpoints/step_N/ with its state.json), oldest first; a save in
    progress is left out."""
    folder = run_folder / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and (path / "state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def checkpoints(run_folder: Path) -> list[Checkpoint]:
    """The completed saves with their files and sizes, oldest first."""
    return [
        Checkpoint(step, [
            RunFile(f"checkpoints/{path.name}/{file.name}", file.stat().st_size)
            for file in sorted(path.iterdir())
            if file.is_file()
        ])
        for step, path in save_folders(run_folder)
    ]


def log_tail(run_folder: Path, lines: int = 200) -> str:
    """The end of train.log, or of console.log when the run wrote no train.log (it failed before logging began).

    Progress bars rewrite their line with carriage returns: only the last state of each line is kept.
    """
    for name in (TRAIN_LOG, CONSOLE_LOG):
        path = run_folder / name
        if path.is_file():
            return tail_text(path, lines)
    return ""


def tail_text(path: Path, lines: int) -> str:
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(shown[-lines:])


def last_error_line(run_folder: Path) -> str | None:
    """The last line of console.log or train.log that reports an error, for a run that left no status."""
    for name in (CONSOLE_LOG, TRAIN_LOG):
        path = run_folder / name
        if not path.is_file():
            continue
        for line in reversed(tail_text(path, 400).splitlines()):
            if line.startswith("error: ") or " ERROR " in line or re.match(r"^\w+(Error|Exception): ", line):
                return line.strip()
    return None


def config_file(run_folder: Path) -> Path | None:
    """The config the run last ran with: the newest checkpoint's config.yaml, else the UI's job.yaml."""
    for _, folder in reversed(save_folders(run_folder)):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return job_file(run_folder)


def job_file(run_folder: Path) -> Path | None:
    """The config the UI queued this run with, or None for a run started from the command line."""
    return next((run_folder / name for name in JOB_FILES if (run_folder / name).is_file()), None)


@dataclass(frozen=True)
class RunConfig:
    """What the UI shows from a run's config: its text and the few values it needs (None when unknown)."""

    text: str
    steps: int | None
    device: str | None
    prompts: list[str]


def read_config(run_folder: Path) -> RunConfig | None:
    """The run's config as written (not validated: the UI shows it, run.py checks it)."""
    path = config_file(run_folder)
    return None if path is None else _parse_config(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=256)  # the runs list asks every few seconds; a config changes only with a new save
def _parse_config(path: str, mtime_ns: int) -> RunConfig:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        process = yaml.safe_load(text)["config"]["process"][0]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return RunConfig(text, None, None, [])
    steps = _get(process, "train", "steps")
    device = process.get("device") if isinstance(process, dict) else None
    prompts = _get(process, "sample", "prompts") or _get(process, "sample", "samples") or []
    texts = [prompt if isinstance(prompt, str) else str(prompt.get("prompt", "")) for prompt in prompts if prompt]
    return RunConfig(text, steps if isinstance(steps, int) else None, device if isinstance(device, str) else None, texts)


def _get(mapping, *keys):
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


@dataclass(frozen=True)
class Inspection:
    """One step's inspection (logging.inspect): its numbers (inspection.json) and the decoded prediction."""

    step: int
    report: str  # inspection.json, indented
    frame: str | None  # predicted_frame.png, relative to the run folder
    audio: str | None  # predicted_audio.wav


def inspections(run_folder: Path, newest: int = 5) -> list[Inspection]:
    """The newest `newest` inspected steps under inspection/step_NNNNNN/, newest first."""
    folder = run_folder / "inspection"
    if not folder.is_dir():
        return []
    steps = sorted((path for path in folder.iterdir() if re.match(r"^step_\d+$", path.name)), key=lambda p: p.name)
    found = []
    for path in reversed(steps[-newest:]):
        report = path / "inspection.json"
        if not report.is_file():
            continue  # being written
        relative = f"inspection/{path.name}"
        found.append(
            Inspection(
                step=int(path.name.split("_")[1]),
                report=report.read_text(encoding="utf-8", errors="replace"),
                frame=f"{relative}/predicted_frame.png" if (path / "predicted_frame.png").is_file() else None,
                audio=f"{relative}/predicted_audio.wav" if (path / "predicted_audio.wav").is_file() else None,
            )
        )
    return found
