"""A job: the processes of one config file, built from the extension registry and run in order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from toolkit.config import JobConfig, ProcessConfig
from toolkit.errors import ExtensionError
from toolkit.extensions import load_process_class


class BaseProcess(ABC):
    """One entry of `config.process`, e.g. the LoRA trainer or the generator.

    `__init__` must stay cheap (no model loading): `run.py --dry-run` builds
    every process and, when the class defines it, calls `dry_run()`, which
    returns a printable report (such as a memory plan) or None after printing
    its own. Loading and work happen in `run()`.
    """

    def __init__(self, process_index: int, job: Job, config: ProcessConfig) -> None:
        self.process_index = process_index
        self.job = job
        self.config = config

    @abstractmethod
    def run(self) -> None:
        """Do the process's work; KeyboardInterrupt is the process's to handle (save, then re-raise)."""


def resolve_process_classes(config: JobConfig) -> list[type[BaseProcess]]:
    """Import the class of every process in `config`, checking each is a BaseProcess.

    `run.py` calls this for every config before running the first, so a
    broken extension is reported before hours of training on another file.
    """
    classes: list[type[BaseProcess]] = []
    for index, process_config in enumerate(config.config.process):
        process_class = load_process_class(process_config.type)
        if not issubclass(process_class, BaseProcess):
            raise ExtensionError(
                f"config.process[{index}]: process type {process_config.type!r} resolves to "
                f"{process_class.__module__}.{process_class.__qualname__}, which does not subclass "
                "toolkit.job.BaseProcess"
            )
        classes.append(process_class)
    return classes


class Job:
    """The processes of one validated config, built in order and run one after another."""

    def __init__(self, config: JobConfig, config_path: str | Path | None = None) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path is not None else None
        self.name = config.config.name
        self.meta = config.meta
        self.processes: list[BaseProcess] = [
            process_class(index, self, process_config)
            for index, (process_class, process_config) in enumerate(
                zip(resolve_process_classes(config), config.config.process)
            )
        ]

    def run(self) -> None:
        from toolkit.trace import reset_tracer  # here, not at the top: validating a config must not import torch

        for process in self.processes:
            try:
                process.run()
            finally:
                # Each process opens its own trace; closing it here writes trace.json whole at the end of the
                # process, not only at the next process's start or at interpreter exit.
                reset_tracer()

    def dry_run(self) -> list[str]:
        """Reports of every process's `dry_run()`, or "config OK" for a process without one."""
        reports: list[str] = []
        for process in self.processes:
            label = f"process[{process.process_index}] {process.config.type}"
            plan = getattr(process, "dry_run", None)
            if not callable(plan):
                reports.append(f"{label}: config OK")
                continue
            report = plan()
            if report is not None:
                reports.append(f"{label}:\n{report}")
        return reports


def run_job(config: JobConfig, config_path: str | Path | None = None) -> Job:
    """Build the job's processes and run them in order; returns the finished job."""
    job = Job(config, config_path)
    job.run()
    return job
