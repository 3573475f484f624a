"""A generate process accepts only the settings it uses; --inspect on a job that does not train is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import run
from extensions_built_in.generate.config import GenerateProcessConfig
from toolkit.config import parse_config
from toolkit.errors import ConfigError


def _generate_job(logging: dict | None = None) -> dict:
    process = {
        "type": "generate",
        "model": {"name_or_path": "tiny-ltx2"},
        "generate": {"prompts": ["a red square"], "width": 64, "height": 64, "num_frames": 9},
    }
    if logging is not None:
        process["logging"] = logging
    return {"job": "extension", "config": {"name": "gen_settings", "process": [process]}}


def test_generate_logging_takes_the_log_file_and_level():
    process = parse_config(_generate_job({"verbose": True, "log_file": "gen.log"})).config.process[0]
    assert isinstance(process, GenerateProcessConfig)
    assert (process.logging.verbose, process.logging.log_file) == (True, "gen.log")
    assert process.logging.use_tensorboard is False  # what the log set-up reads: no TensorBoard writer


@pytest.mark.parametrize("key", ["use_tensorboard", "inspect", "log_every", "use_wandb"])
def test_training_only_logging_keys_are_rejected_for_generate(key):
    with pytest.raises(ConfigError) as raised:
        parse_config(_generate_job({key: True if key != "log_every" else 5}))
    message = str(raised.value)
    assert f"config.process[0].logging: {key} only apply to training (sd_trainer)" in message
    assert "allowed here: verbose, log_file, max_file_bytes, backup_count" in message


def test_inspect_flag_on_a_generate_job_is_a_config_error(tmp_path: Path, capsys):
    path = tmp_path / "generate.yaml"
    path.write_text(yaml.safe_dump(_generate_job()))
    assert run.main([str(path), "--inspect"]) == run.EXIT_CONFIG_ERROR
    error = capsys.readouterr().err
    assert "--inspect/--inspect-every: job 'gen_settings' has no sd_trainer process (it runs: generate)" in error
