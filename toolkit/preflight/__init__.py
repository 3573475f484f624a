"""Everything about a job that can be checked without weights, checked before anything loads.

The schema (toolkit/config) checks each value on its own; these checks look at
what the values point to: the output folder, the dataset folders, their media
and captions, the sample prompts and their images, and the LoRA filters
against the transformer built on the meta device. Each process config lists the checks that
concern it (`ProcessConfig.problems_before_loading`, e.g. extensions_built_in/sd_trainer/config.py)
from the modules of this package, and what its run folder allows (`ProcessConfig.run_folder_problems`:
the run's name against the file system, a saved run it would resume). `run.py` runs them for every job, `--dry-run`
included, and reports every problem of every file in one message (exit 2).

What the checks find that is not a problem but changes what trains (a clip shorter
than `num_frames`, frames scaled up more than 2x, 5.1 audio, files that will be
skipped) is a notice: `check_before_loading` adds them to the job's notes.

Dataset and sampling checks are plain Python and never import torch; the
LoRA check asks the model arch (through the extension registry) only when
`network.target_modules` or `network.exclude_modules` is set.
"""

from __future__ import annotations

from toolkit.config import JobConfig
from toolkit.errors import ConfigError

__all__ = ["check_before_loading", "notices_before_loading", "problems_before_loading"]


def problems_before_loading(job: JobConfig) -> list[str]:
    """One line per problem, each starting with the key path it is about."""
    problems: list[str] = []
    for index, process in enumerate(job.config.process):
        problems += process.problems_before_loading(f"config.process[{index}]")
        problems += process.run_folder_problems(f"config.process[{index}]", job.config.name)
    return problems


def notices_before_loading(job: JobConfig) -> list[str]:
    """One line per notice (what the run will do by rule: a short clip spread, frames scaled up, ...)."""
    notices: list[str] = []
    for index, process in enumerate(job.config.process):
        notices += process.notices_before_loading(f"config.process[{index}]")
    return notices


def check_before_loading(job: JobConfig, source: str | None = None) -> None:
    """Raise one ConfigError listing every problem of `job` (from file `source`), if it has any; otherwise
    add the notices to the job's notes (`job.notes.found`), which run.py prints, dry run or not."""
    problems = problems_before_loading(job)
    if problems:
        raise ConfigError(problems, source=source)
    job.notes.found[:] = notices_before_loading(job)
