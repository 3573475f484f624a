"""Command line: validate job files, then run them.

    python run.py CONFIG [CONFIG ...] [--set dotted.key=value ...] [--verbose] [--debug]
                  [--dry-run] [--inspect] [--inspect-every N]
    python run.py --tensorboard DIR
    python run.py ui [--host 127.0.0.1] [--port 8675] [--training-folder DIR ...]   (the web UI, see ui/)

Every config is validated (and its process classes imported) before the first
one runs: its schema, then what needs no weights (toolkit.preflight: output
and dataset folders, media and captions, sample prompts, LoRA filters), with
--dry-run too. Exit codes: 0 done, 2 invalid config, 1 other ltx2-trace
errors (a full disk, a run already using the folder, ...), 130 interrupted (Ctrl-C),
143 stopped by SIGTERM. Project errors, file-system errors (disk full, read-only,
no permission, name too long) and interruptions print one line without a traceback
unless --debug is given.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.deferred_packages import defer
from toolkit.errors import ConfigError, ToolkitError
from toolkit.file_errors import describe, file_system_cause
from toolkit.gc_pause import collection_paused
from toolkit.stopping import Stopped, sigterm_stops

if TYPE_CHECKING:
    from toolkit.config import JobConfig

# The config schema (pydantic), the job and the checks are imported once the arguments are parsed:
# `run.py --help` and a wrong option answer without them (and never import torch).

EXIT_OK = 0
EXIT_RUNTIME_ERROR = 1
EXIT_CONFIG_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM gives 143 (toolkit.stopping.Stopped.exit_code)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py", description="Train LTX-2 LoRAs (or generate) from ai-toolkit-style YAML job files."
    )
    parser.add_argument("config", nargs="*", type=Path, help="job files (.yaml, .yml, .json), run in order")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value, e.g. config.process.0.train.lr=5e-5 (repeatable; value read as YAML)",
    )
    parser.add_argument("--verbose", action="store_true", help="turn on the verbose trace (model.verbose) everywhere")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of ltx2-trace errors")
    parser.add_argument(
        "--dry-run", action="store_true", help="validate, print each process's plan (or 'config OK'), do not run"
    )
    parser.add_argument("--tensorboard", type=Path, metavar="DIR", help="start TensorBoard on DIR and do nothing else")
    parser.add_argument("--inspect", action="store_true", help="run the inspection callbacks of sd_trainer processes")
    parser.add_argument(
        "--inspect-every", type=_positive_int, metavar="N", help="inspect every N steps (implies --inspect)"
    )
    return parser


def main(argv: Sequence[str] | None = None, freeze_imports: bool = False) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ui"]:
        from ui.cli import main as ui_main  # the web app; it starts this script again for each job

        return ui_main(argv[1:])
    defer()  # bitsandbytes waits for the optimizer that uses it (toolkit/deferred_packages.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tensorboard is not None:
        return launch_tensorboard(args.tensorboard)
    if not args.config:
        parser.error("give at least one config file (or --tensorboard DIR)")
    try:
        with sigterm_stops():
            return run_configs(args, freeze_imports)
    except KeyboardInterrupt as interrupt:
        stopped = Stopped.from_interrupt(interrupt)
        print(f"{_rank_prefix()}{stopped}", file=sys.stderr)
        return stopped.exit_code
    except ToolkitError as error:
        _report(error, args.debug)
        return exit_code(error)
    except OSError as error:
        cause = file_system_cause(error)
        if cause is None:
            raise  # not the machine's state: a bug, with its traceback
        if args.debug:
            traceback.print_exception(error)
        print(f"{_rank_prefix()}error: {describe(cause)}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR


def run_configs(args: argparse.Namespace, freeze_imports: bool = False) -> int:
    """Validate every config, then run (or dry-run) each job in order (`freeze_imports`: `set_aside_imports` first)."""
    # The command line imports the libraries and the process classes with the collector paused (toolkit/gc_pause.py).
    with collection_paused(freeze_imports):
        from toolkit.job import Job, resolve_process_classes

        configs, errors = validate_all(args.config, args.overrides, args.verbose)
        for error in errors:
            _report(error, args.debug)
        if errors:
            return EXIT_CONFIG_ERROR
        for path, job_config in configs:
            apply_inspection(job_config, args.inspect, args.inspect_every)
            resolve_process_classes(job_config)
            print_notes(path, job_config)
    if freeze_imports:
        set_aside_imports()
    for path, job_config in configs:
        job = Job(job_config, path)
        if args.dry_run:
            for report in job.dry_run():
                print(f"{path}: {report}")
        else:
            job.run()
    return EXIT_OK


def exit_code(error: ToolkitError) -> int:
    """2 for an invalid config, 1 for every other ltx2-trace error."""
    return EXIT_CONFIG_ERROR if isinstance(error, ConfigError) else EXIT_RUNTIME_ERROR


def validate_all(
    paths: Sequence[Path], overrides: Sequence[str], verbose: bool
) -> tuple[list[tuple[Path, JobConfig]], list[ConfigError]]:
    """Load and check every config, collecting the errors of all invalid files so they are reported together.

    A file is checked in two steps: its schema (every key and value), then, when that passes, what
    needs no weights but more than the values (toolkit.preflight: dataset folders, media and
    captions, sample prompts, LoRA filters). Both happen before any model loads, dry run or not.
    """
    from toolkit.config import load_config
    from toolkit.preflight import check_before_loading

    configs: list[tuple[Path, JobConfig]] = []
    errors: list[ConfigError] = []
    for path in paths:
        try:
            job_config = load_config(path, overrides=overrides, force_verbose=verbose)
            check_before_loading(job_config, source=str(path))
            configs.append((path, job_config))
        except ConfigError as error:
            errors.append(error)
    return configs, errors


def print_notes(path: Path, job_config: JobConfig) -> None:
    """Say once which ai-toolkit keys were read as ours, which are not used and which values were adjusted."""
    for line in job_config.notes.lines():
        print(f"{path}: {line}")


def apply_inspection(job_config: JobConfig, inspect: bool, inspect_every: int | None) -> None:
    """Store --inspect / --inspect-every in the logging config of each sd_trainer process.

    A job without an sd_trainer process has nothing to inspect: a ConfigError, not a silent no-op.
    """
    if not inspect and inspect_every is None:
        return
    from toolkit.config import LoggingConfig

    # Training processes carry the training logging block (the one with `inspect`); generate's has none.
    trainers = [process for process in job_config.config.process if isinstance(getattr(process, "logging", None), LoggingConfig)]
    if not trainers:
        types = ", ".join(process.type for process in job_config.config.process)
        raise ConfigError(
            f"--inspect/--inspect-every: job {job_config.config.name!r} has no sd_trainer process (it runs: {types}); "
            "the inspection callbacks run during training only. Drop the flag for this config."
        )
    for process in trainers:
        process.logging.inspect = True
        if inspect_every is not None:
            process.logging.inspect_every = inspect_every


def set_aside_imports() -> None:
    """Take what is imported and built so far (the libraries, the jobs' process classes, the configs) out of the
    garbage collector's walks, once per process (`gc.freeze`): modules, classes and functions live as long as the
    process, and each full collection walked all of them (about 420,000 objects after the tiny example's imports,
    0.2 CPU-seconds on a 2-core machine, during loading and again later). Only the command line does it
    (`freeze_imports`): a process that calls main() several times, such as a test session, would freeze its
    earlier garbage too."""
    gc.freeze()


def launch_tensorboard(log_dir: Path) -> int:
    """Run TensorBoard on `log_dir` in a child process until it exits or Ctrl-C."""
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir)]
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _report(error: ToolkitError, debug: bool) -> None:
    if debug:
        traceback.print_exception(error)
    print(f"{_rank_prefix()}error: {error}", file=sys.stderr)


def _rank_prefix() -> str:
    """Under accelerate launch / torchrun every process reports its own error: say which one it was."""
    from toolkit.distributed import rank_tag, world_size

    try:
        return f"{rank_tag()} " if world_size() > 1 else ""
    except ConfigError:  # the launcher's variables are the error being reported
        return ""


if __name__ == "__main__":
    sys.exit(main(freeze_imports=True))
