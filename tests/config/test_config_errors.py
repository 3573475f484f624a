"""Every kind of invalid job file ends in one ConfigError naming the file, the key path and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from toolkit.config import load_config
from toolkit.errors import ConfigError
from toolkit.extensions import registered_archs, registered_process_types

WriteJob = Callable[..., Path]


def problems_of(write_job: WriteJob, job: dict[str, Any]) -> tuple[ConfigError, Path]:
    path = write_job(job)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value, path


def process(job: dict[str, Any]) -> dict[str, Any]:
    return job["config"]["process"][0]


def test_unknown_key_names_its_path_the_file_and_a_suggestion(write_job: WriteJob, valid_job: dict) -> None:
    process(valid_job)["model"]["qtpye"] = "qint8"
    error, path = problems_of(write_job, valid_job)
    assert error.source == str(path)
    assert str(path) in str(error)
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert problem.startswith("config.process[0].model.qtpye: unknown key (did you mean 'qtype'?")
    assert "allowed: name_or_path, base_model_path, arch, max_sequence_length, verbose, dtype" in problem


def test_unknown_top_level_and_nested_list_keys(write_job: WriteJob, valid_job: dict) -> None:
    valid_job["jobs"] = "extension"
    process(valid_job)["datasets"][0]["folder"] = "x"
    error, _ = problems_of(write_job, valid_job)
    first, second = error.problems
    assert first.startswith("config.process[0].datasets[0].folder: unknown key (did you mean 'folder_path'?")
    assert second.startswith("jobs: unknown key (did you mean 'job'?; allowed: job, config, meta)")


def test_wrong_types_say_what_was_expected(write_job: WriteJob, valid_job: dict) -> None:
    process(valid_job)["train"]["lr"] = "abc"
    process(valid_job)["train"]["steps"] = "many"
    process(valid_job)["model"]["quantize"] = "maybe"
    process(valid_job)["network"] = "lora"
    error, _ = problems_of(write_job, valid_job)
    assert error.problems == [
        "config.process[0].model.quantize: 'maybe' is not true or false",
        "config.process[0].network: 'lora' is not a mapping of keys",
        "config.process[0].train.steps: 'many' is not an integer",
        "config.process[0].train.lr: 'abc' is not a number",
    ]


def test_missing_required_key_shows_its_description(write_job: WriteJob, valid_job: dict) -> None:
    del process(valid_job)["model"]["name_or_path"]
    del valid_job["config"]["name"]
    error, _ = problems_of(write_job, valid_job)
    assert error.problems[0] == (
        "config.name: required key missing (Name of the run; its files go to <training_folder>/<name>/ "
        "and [name] in any value becomes it.)"
    )
    assert error.problems[1].startswith("config.process[0].model.name_or_path: required key missing (Hugging Face")


def test_bad_literal_lists_the_allowed_values(write_job: WriteJob, valid_job: dict) -> None:
    process(valid_job)["model"]["qtype"] = "qint9"
    process(valid_job)["train"]["optimizer"] = "sgd"
    error, _ = problems_of(write_job, valid_job)
    assert error.problems == [
        "config.process[0].model.qtype: 'qint9' is not allowed (allowed: 'qfloat8', 'qint8', 'qint4' or 'uint4')",
        "config.process[0].train.optimizer: 'sgd' is not allowed (allowed: 'adamw', 'adamw8bit' or 'prodigy')",
    ]


def test_frame_counts_must_be_8k_plus_1_with_nearest_values(write_job: WriteJob, valid_job: dict) -> None:
    process(valid_job)["datasets"][0]["num_frames"] = 10
    process(valid_job)["sample"]["num_frames"] = 4
    error, _ = problems_of(write_job, valid_job)
    assert error.problems == [
        "config.process[0].datasets[0].num_frames: 10 frames is not 8k+1 as LTX-2 needs (nearest valid: 9 or 17)",
        "config.process[0].sample.num_frames: 4 frames is not 8k+1 as LTX-2 needs (nearest valid: 1 or 9)",
    ]


def test_sizes_must_be_multiples_of_32(write_job: WriteJob, valid_job: dict) -> None:
    process(valid_job)["datasets"][0]["resolution"] = [64, 70]
    process(valid_job)["sample"]["height"] = 20
    error, _ = problems_of(write_job, valid_job)
    assert error.problems == [
        "config.process[0].datasets[0].resolution[1]: resolution 70 is not a positive multiple of 32 "
        "as LTX-2 needs (nearest valid: 64 or 96)",
        "config.process[0].sample.height: height 20 is not a positive multiple of 32 as LTX-2 needs (nearest valid: 32)",
    ]


def test_missing_dataset_folder_names_the_path(write_job: WriteJob, valid_job: dict, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_clips"
    process(valid_job)["datasets"][0]["folder_path"] = str(missing)
    error, _ = problems_of(write_job, valid_job)
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"config.process[0].datasets[0].folder_path: dataset folder '{missing}' does not exist")


def test_ranges_devices_and_archs(write_job: WriteJob, valid_job: dict) -> None:
    process(valid_job)["device"] = "gpu"
    process(valid_job)["model"]["arch"] = "flux"
    process(valid_job)["model"]["layer_offloading_transformer_percent"] = 1.5
    process(valid_job)["network"]["dropout"] = -0.1
    error, _ = problems_of(write_job, valid_job)
    assert error.problems == [
        "config.process[0].device: device 'gpu' is not one of cpu, cuda, cuda:N (N = GPU index), auto",
        f"config.process[0].model.arch: unknown model arch 'flux' (registered: {', '.join(registered_archs())})",
        "config.process[0].model.layer_offloading_transformer_percent: 1.5 is out of range (must be <= 1.0)",
        "config.process[0].network.dropout: -0.1 is out of range (must be >= 0.0)",
    ]


def test_process_type_unknown_missing_or_list_empty(write_job: WriteJob, valid_job: dict) -> None:
    valid_job["config"]["process"] += [{"type": "trainer"}, {"device": "cpu"}]
    error, _ = problems_of(write_job, valid_job)
    known = ", ".join(registered_process_types())  # other tests may have registered more than the built-ins
    assert {"generate", "sd_trainer"} <= set(registered_process_types())
    assert error.problems == [
        f"config.process[1].type: unknown process type 'trainer' (registered: {known})",
        f"config.process[2].type: required key missing (registered process types: {known})",
    ]
    valid_job["config"]["process"] = []
    error, _ = problems_of(write_job, valid_job)
    assert error.problems == ["config.process: has 0 item(s), needs at least 1"]


def test_every_problem_is_reported_at_once(write_job: WriteJob, valid_job: dict) -> None:
    valid_job["job"] = "train"
    process(valid_job)["model"]["dtype"] = "bf17"
    process(valid_job)["train"]["batch_size"] = 0
    process(valid_job)["sample"]["prompts"][1]["seed"] = "lucky"
    error, path = problems_of(write_job, valid_job)
    assert [problem.split(":")[0] for problem in error.problems] == [
        "job",
        "config.process[0].model.dtype",
        "config.process[0].train.batch_size",
        "config.process[0].sample.prompts[1].seed",
    ]
    assert str(error).startswith(f"Invalid config {path} (4 problems):\n  - job: 'train' is not allowed")


def test_generate_process_needs_prompts(write_job: WriteJob, valid_job: dict) -> None:
    valid_job["config"]["process"] = [
        {"type": "generate", "model": {"name_or_path": "tiny-ltx2"}, "generate": {"prompts": []}}
    ]
    error, _ = problems_of(write_job, valid_job)
    assert error.problems == ["config.process[0].generate.prompts: has 0 item(s), needs at least 1"]
