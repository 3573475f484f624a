"""run.py: exit codes, validation of every file before running, flags, and a user extension end to end."""

from __future__ import annotations

import ast
import gc
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from extensions_built_in.sd_trainer.config import TrainProcessConfig
from toolkit.config import parse_config
from toolkit.extensions import discover_extensions

REPO_ROOT = Path(__file__).resolve().parents[1]

PROBE_CONFIG = '''
from typing import Literal
from pydantic import Field
from toolkit.config import ModelProcessConfig

class ProbeConfig(ModelProcessConfig):
    """A process that records that it ran, for the CLI tests."""
    type: Literal["cli_probe", "cli_probe_plain", "cli_probe_not_a_process"] = Field(description="CLI probe.")
    marker: str = Field(description="File each run appends one line to.")
    outcome: Literal["finish", "fail", "interrupt"] = Field(default="finish", description="How run() ends.")
'''
PROBE_PROCESS = '''
from toolkit.errors import DataError
from toolkit.job import BaseProcess

class PlainProbe(BaseProcess):
    def run(self) -> None:
        with open(self.config.marker, "a") as marker:
            marker.write(f"{self.job.name} process[{self.process_index}] verbose={self.config.model.verbose}\\n")
        if self.config.outcome == "fail":
            raise DataError(f"probe {self.job.name} could not read its clips")
        if self.config.outcome == "interrupt":
            raise KeyboardInterrupt

class PlanningProbe(PlainProbe):
    def dry_run(self) -> str:
        return f"plan for {self.job.name}: 1 step"
'''
PROBE_INIT = '''
from extensions.cli_probe.config import ProbeConfig
from toolkit.extensions import register_process

register_process("cli_probe", ProbeConfig, "extensions.cli_probe.process:PlanningProbe")
register_process("cli_probe_plain", ProbeConfig, "extensions.cli_probe.process:PlainProbe")
register_process("cli_probe_not_a_process", ProbeConfig, "extensions.cli_probe.config:ProbeConfig")
'''


@pytest.fixture(scope="session")
def user_extensions_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `extensions/cli_probe/`, a user extension as extensions/README.md describes."""
    root = tmp_path_factory.mktemp("user_root")
    package = root / "extensions" / "cli_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PROBE_INIT)
    (package / "config.py").write_text(PROBE_CONFIG)
    (package / "process.py").write_text(PROBE_PROCESS)
    return root


@pytest.fixture(scope="session")
def cli(user_extensions_root: Path) -> ModuleType:
    """run.py as a module, with the probe extension discovered in this interpreter too."""
    sys.path.insert(0, str(user_extensions_root))
    assert "extensions.cli_probe" in discover_extensions()
    spec = importlib.util.spec_from_file_location("ltx2_trace_run_cli", REPO_ROOT / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe_job(name: str, marker: Path, type_name: str = "cli_probe", **fields: Any) -> dict[str, Any]:
    process = {"type": type_name, "marker": str(marker), "model": {"name_or_path": "tiny-ltx2"}, **fields}
    return {"job": "extension", "config": {"name": name, "process": [process]}}


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, dict[str, Any]], Path]:
    def write_file(file_name: str, content: dict[str, Any]) -> Path:
        path = tmp_path / file_name
        path.write_text(yaml.safe_dump(content))
        return path

    return write_file


def run_script(*args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    result = subprocess.run(
        [sys.executable, "run.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    return result


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("job: extension\nconfig:\n  name: x\n  process:\n    - type: sd_trainer\n      modle: {}\n")
    result = run_script(str(bad))
    assert result.returncode == 2
    assert f"error: Invalid config {bad}" in result.stderr
    assert "config.process[0].modle: unknown key (did you mean 'model'?" in result.stderr
    assert "config.process[0].model: required key missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_extension_folder_is_discovered_by_the_script(
    tmp_path: Path, user_extensions_root: Path, write: Callable[[str, dict[str, Any]], Path]
) -> None:
    marker = tmp_path / "marker.txt"
    planned = write("planned.yaml", probe_job("planned", marker))
    plain = write("plain.yaml", probe_job("plain", marker, "cli_probe_plain"))

    result = run_script(str(planned), str(plain), "--dry-run", extra_path=user_extensions_root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{planned}: process[0] cli_probe:",
        "plan for planned: 1 step",
        f"{plain}: process[0] cli_probe_plain: config OK",
    ]
    assert not marker.exists()

    result = run_script(str(planned), str(plain), "--verbose", extra_path=user_extensions_root)
    assert result.returncode == 0, result.stderr
    assert marker.read_text().splitlines() == ["planned process[0] verbose=True", "plain process[0] verbose=True"]


def test_every_config_is_validated_before_the_first_runs(
    cli: ModuleType, tmp_path: Path, write: Callable[[str, dict[str, Any]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker.txt"
    good = write("good.yaml", probe_job("good", marker))
    bad = write("bad.yaml", probe_job("bad", marker, outcome="explode"))
    missing = tmp_path / "missing.yaml"
    assert cli.main([str(good), str(bad), str(missing)]) == 2
    assert not marker.exists()
    stderr = capsys.readouterr().err
    assert f"error: Invalid config {bad} (1 problem):" in stderr
    assert "config.process[0].outcome: 'explode' is not allowed (allowed: 'finish', 'fail' or 'interrupt')" in stderr
    assert f"error: config file {missing} not found" in stderr


def test_configs_run_in_order_with_overrides(
    cli: ModuleType, tmp_path: Path, write: Callable[[str, dict[str, Any]], Path]
) -> None:
    marker = tmp_path / "marker.txt"
    first = write("first.yaml", probe_job("first", marker))
    second = write("second.yaml", probe_job("second", marker))
    assert cli.main([str(first), str(second), "--set", "config.process.0.model.verbose=true"]) == 0
    assert marker.read_text().splitlines() == ["first process[0] verbose=True", "second process[0] verbose=True"]


def test_runtime_project_error_exits_1_without_traceback(
    cli: ModuleType, tmp_path: Path, write: Callable[[str, dict[str, Any]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write("fail.yaml", probe_job("failing", tmp_path / "marker.txt", outcome="fail"))
    assert cli.main([str(path)]) == 1
    stderr = capsys.readouterr().err
    assert stderr == "error: probe failing could not read its clips\n"
    assert cli.main([str(path), "--debug"]) == 1
    stderr = capsys.readouterr().err
    assert "Traceback (most recent call last)" in stderr and "DataError: probe failing" in stderr


def test_interrupt_exits_130(
    cli: ModuleType, tmp_path: Path, write: Callable[[str, dict[str, Any]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker.txt"
    path = write("stop.yaml", probe_job("stopped", marker, outcome="interrupt"))
    assert cli.main([str(path)]) == 130
    assert marker.read_text() == "stopped process[0] verbose=False\n"
    assert capsys.readouterr().err == "Interrupted.\n"


def test_the_command_line_checks_its_configs_with_the_collector_paused_then_sets_the_imports_aside(
    cli: ModuleType, tmp_path: Path, write: Callable[[str, dict[str, Any]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.py's own process (`freeze_imports`) collects no garbage while it imports and checks the configs, then
    freezes what that built and collects again; a config error ends the pause as well, with nothing frozen."""
    collecting_while_checking = []
    validate = cli.validate_all

    def recorded(*args):
        collecting_while_checking.append(gc.isenabled())
        return validate(*args)

    monkeypatch.setattr(cli, "validate_all", recorded)
    bad = tmp_path / "bad.yaml"
    bad.write_text("job: extension\nconfig:\n  name: x\n  process:\n    - type: cli_probe\n      modle: {}\n")
    frozen_before = gc.get_freeze_count()
    try:
        assert cli.main([str(bad)], freeze_imports=True) == 2
        assert gc.isenabled() and gc.get_freeze_count() == frozen_before
        planned = write("planned.yaml", probe_job("planned", tmp_path / "marker.txt"))
        assert cli.main([str(planned), "--dry-run"], freeze_imports=True) == 0
        assert gc.isenabled() and gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()  # this test session's objects go back to the collector
        gc.enable()
    assert collecting_while_checking == [False, False]
    assert cli.main([str(planned), "--dry-run"]) == 0 and collecting_while_checking[-1] is True  # a caller's own


def test_process_class_must_be_a_base_process(
    cli: ModuleType, tmp_path: Path, write: Callable[[str, dict[str, Any]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write("wrong.yaml", probe_job("wrong", tmp_path / "marker.txt", "cli_probe_not_a_process"))
    assert cli.main([str(path), "--dry-run"]) == 1
    assert "which does not subclass toolkit.job.BaseProcess" in capsys.readouterr().err


def test_inspect_flags_reach_sd_trainer_logging_config(cli: ModuleType, tmp_path: Path) -> None:
    job = parse_config(
        {
            "job": "extension",
            "config": {
                "name": "inspected",
                "process": [
                    {"type": "sd_trainer", "model": {"name_or_path": "tiny-ltx2"}, "datasets": [{"folder_path": str(tmp_path)}]},
                    {"type": "cli_probe", "marker": "m", "model": {"name_or_path": "tiny-ltx2"}},
                ],
            },
        }
    )
    cli.apply_inspection(job, inspect=False, inspect_every=25)
    trainer = job.config.process[0]
    assert isinstance(trainer, TrainProcessConfig)
    assert (trainer.logging.inspect, trainer.logging.inspect_every) == (True, 25)
    assert not hasattr(job.config.process[1], "logging")


def test_argument_errors(cli: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as no_config:
        cli.main([])
    assert no_config.value.code == 2
    with pytest.raises(SystemExit) as bad_every:
        cli.main(["job.yaml", "--inspect-every", "0"])
    assert bad_every.value.code == 2
    assert "0 must be 1 or more" in capsys.readouterr().err


def test_tensorboard_flag_starts_tensorboard_on_the_folder(
    cli: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[list[str]] = []

    def record(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        launched.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(cli.subprocess, "run", record)
    assert cli.main(["--tensorboard", str(tmp_path)]) == 0
    assert launched == [[sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path)]]


# What a run may need but `run.py --help` must not import (each costs from a tenth of a second to seconds).
HEAVY_MODULES = (
    "torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "optimum", "bitsandbytes",
    "tensorboard", "moviepy", "wandb", "av", "PIL", "numpy", "pydantic", "yaml",
)  # fmt: skip


def test_help_imports_no_heavy_module() -> None:
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['run.py', '--help']\n"
        "try:\n    runpy.run_path('run.py', run_name='__main__')\nexcept SystemExit as done:\n    assert done.code == 0\n"
        "print(sorted({name.split('.')[0] for name, module in sys.modules.items() if module is not None}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    usage, imported = result.stdout.rsplit("\n", 2)[:2]
    assert "usage: run.py" in usage
    assert sorted(set(HEAVY_MODULES) & set(ast.literal_eval(imported))) == []
