"""A key given twice in one mapping is a config error naming its path (and, in YAML, both lines)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from toolkit.config import load_config, read_config_file
from toolkit.errors import ConfigError

WriteJob = Callable[..., Path]


def yaml_job(train_block: str, extra: str = "") -> str:
    return (
        "job: extension\n"
        "config:\n"
        "  name: dup\n"
        "  process:\n"
        "    - type: sd_trainer\n"
        "      model: {name_or_path: tiny-ltx2}\n"
        "      datasets: [{folder_path: .}]\n"
        f"      train:\n{train_block}"
        f"{extra}"
    )


def test_yaml_key_given_twice_names_path_and_both_lines(write_job: WriteJob) -> None:
    path = write_job(yaml_job("        lr: 1e-4\n        steps: 3\n        lr: 1e-3\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        "config.process[0].train.lr: key given twice (line 9 and line 11); only the later value would be used, "
        "so delete the one you do not mean"
    ]
    assert str(caught.value).startswith(f"Invalid config {path} (1 problem):")


def test_every_repeated_key_is_reported_with_the_schema_problems(write_job: WriteJob) -> None:
    text = yaml_job("        steps: 3\n        stepz: 4\n", "  name: again\nmeta: {}\nmeta: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write_job(text))
    problems = caught.value.problems
    assert problems[0].startswith("config.name: key given twice (line 3 and line 11)")
    assert problems[1].startswith("meta: key given twice (line 12 and line 13)")
    assert any(problem.startswith("config.process[0].train.stepz: unknown key") for problem in problems[2:])


def test_same_key_in_different_mappings_anchors_and_merges_are_fine(write_job: WriteJob) -> None:
    text = (
        "job: extension\n"
        "defaults: &model {name_or_path: tiny-ltx2, dtype: fp32}\n"
        "config:\n"
        "  name: ok\n"
        "  process:\n"
        "    - type: sd_trainer\n"
        "      model: {<<: *model, dtype: bf16}\n"
        "      datasets: [{folder_path: ., num_frames: 9}, {folder_path: ., num_frames: 17}]\n"
        "      train: {steps: 3}\n"
        "      sample: {num_frames: 9}\n"
    )
    data = read_config_file(write_job(text))
    assert data["config"]["process"][0]["model"] == {"name_or_path": "tiny-ltx2", "dtype": "bf16"}


def test_read_config_file_raises_on_a_repeated_key(write_job: WriteJob) -> None:
    path = write_job("job: extension\njob: extension\n")
    with pytest.raises(ConfigError, match=r"job: key given twice \(line 1 and line 2\)"):
        read_config_file(path)


def test_json_key_given_twice_names_its_path(write_job: WriteJob, valid_job: dict) -> None:
    process = '{"type": "sd_trainer", "model": {"name_or_path": "tiny-ltx2"}, "datasets": [{"folder_path": "."}]'
    text = (
        '{"job": "extension", "config": {"name": "a", "process": ['
        + process
        + ', "train": {"lr": 0.1, "steps": 2, "lr": 0.2}}]}}'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write_job(text, "job.json"))
    assert caught.value.problems == [
        "config.process[0].train.lr: key given more than once in the same JSON object; only the last value would be "
        "used, so delete the ones you do not mean"
    ]


def test_a_file_without_repeats_reads_as_plain_dicts(write_job: WriteJob, valid_job: dict) -> None:
    path = write_job(valid_job, "job.json")
    data = read_config_file(path)
    assert data == valid_job and type(data["config"]) is dict
    yaml.safe_dump(data)  # plain values, as a checkpoint's config.yaml needs
