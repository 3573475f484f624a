"""A job the UI is asked to queue, checked the way run.py checks it, plus what the UI itself needs.

run.py's checks: the config loader (YAML/JSON syntax, keys given twice, every key and value,
ai-toolkit's spellings) and `toolkit.preflight` (folders, media and captions, prompts, LoRA
filters), each problem a line that starts with its key path; then every process class is
resolved. The UI's own: the job trains (its first process is `sd_trainer`) into a folder directly
inside one of the UI's training folders, and a new job does not reuse an existing run's name.
When all of that passes, the dry run (`Job.dry_run()`, what `run.py --dry-run` prints: the
checkpoint report and the memory plan per phase, device and host against the budget) is computed.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.config import JobConfig, load_config
from toolkit.errors import ConfigError, ToolkitError
from toolkit.gc_pause import collection_paused
from toolkit.job import Job, resolve_process_classes
from toolkit.preflight import problems_before_loading

from .folders import Folders

KEY_PATH = re.compile(r"^[A-Za-z_][\w.\[\]]*$")
DRY_RUN_LOCK = threading.Lock()  # one dry run at a time: the model classes build meta-device modules


@dataclass(frozen=True)
class Problem:
    key: str  # the key path the problem is about ("config.process[0].train.steps"), "" for the whole file
    message: str

    def is_about(self, key: str) -> bool:
        """Whether this problem belongs next to the field of `key` (the trainer's own checks name shorter paths)."""
        return bool(self.key) and (key == self.key or key.endswith("." + self.key))


@dataclass
class JobCheck:
    text: str
    suffix: str  # .yaml or .json: how the text is read
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)  # the dry-run report, line by line
    name: str | None = None
    run_folder: Path | None = None
    device: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def about(self, key: str) -> list[Problem]:
        return [problem for problem in self.problems if problem.is_about(key)]

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "problems": [{"key": problem.key, "message": problem.message} for problem in self.problems],
            "notes": self.notes,
            "plan": self.plan,
            "name": self.name,
            "run_folder": str(self.run_folder) if self.run_folder else None,
            "device": self.device,
        }


def split_problem(line: str) -> Problem:
    key, separator, message = line.partition(": ")
    if separator and KEY_PATH.match(key):
        return Problem(key, message)
    return Problem("", line)


def check_job(text: str, folders: Folders, suffix: str = ".yaml", new: bool = True, dry_run: bool = True) -> JobCheck:
    """Everything run.py checks before loading, the UI's rules, then (when all pass and asked) the dry run."""
    check = JobCheck(text, suffix)
    pending = folders.state / "pending" / f"{uuid.uuid4().hex}{suffix}"
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_text(text, encoding="utf-8")
    try:
        with collection_paused():  # the first check imports the model code into the server (toolkit/gc_pause.py)
            job = _load(check, pending)
            if job is None:
                return check
            _check_place(check, job, folders, new)
            if check.ok:
                _resolve_and_plan(check, job, pending, dry_run)
    finally:
        pending.unlink(missing_ok=True)
    return check


def _load(check: JobCheck, path: Path) -> JobConfig | None:
    try:
        job = load_config(path)
    except ConfigError as error:
        check.problems += [split_problem(line.replace(str(path), f"the job{check.suffix}")) for line in error.problems]
        return None
    check.notes = job.notes.lines()
    check.problems += [split_problem(line) for line in problems_before_loading(job)]
    return job


def _check_place(check: JobCheck, job: JobConfig, folders: Folders, new: bool) -> None:
    process = job.config.process[0]
    check.name = job.config.name
    if process.type != "sd_trainer":
        check.problems.append(
            Problem("config.process[0].type", f"the UI runs training jobs (sd_trainer first), not {process.type!r}; run it with run.py")
        )
        return
    check.device = process.device
    run_folder = folders.absolute(process.training_folder) / job.config.name
    check.run_folder = run_folder
    if folders.locate_run(run_folder) is None:
        served = ", ".join(str(path) for path in folders.training)
        check.problems.append(
            Problem(
                "config.process[0].training_folder",
                f"{process.training_folder} is not one of the UI's training folders ({served}); pick one of them, "
                "or start the UI with --training-folder for this one",
            )
        )
    elif new and run_folder.exists():
        check.problems.append(
            Problem("config.name", f"a run named {job.config.name!r} already exists in {run_folder.parent}; pick another name, or resume that run from its page")
        )


def _resolve_and_plan(check: JobCheck, job: JobConfig, path: Path, dry_run: bool) -> None:
    try:
        resolve_process_classes(job)
        if not dry_run:
            return
        with DRY_RUN_LOCK:
            reports = Job(job, path).dry_run()
    except ConfigError as error:
        check.problems += [split_problem(line) for line in error.problems]
        return
    except ToolkitError as error:
        check.problems.append(Problem("", str(error)))
        return
    check.plan = [line for report in reports for line in report.splitlines()]
