"""Fixtures of the config tests: a dataset folder, a valid job mapping, and a writer for job files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(scope="session")
def clips_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An existing folder for `datasets[].folder_path` (the schema only checks that it exists)."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture
def valid_job(clips_folder: Path) -> dict[str, Any]:
    """A small valid sd_trainer job, as read from YAML; each test gets its own copy."""
    return {
        "job": "extension",
        "config": {
            "name": "cat_lora",
            "process": [
                {
                    "type": "sd_trainer",
                    "training_folder": "output/[name]",
                    "device": "cpu",
                    "model": {"name_or_path": "tiny-ltx2", "dtype": "fp32", "quantize": True, "qtype": "qint8"},
                    "network": {"type": "lora", "linear": 4, "linear_alpha": 4},
                    "datasets": [{"folder_path": str(clips_folder), "num_frames": 17, "resolution": [32, 64]}],
                    "train": {"steps": 10, "lr": "1e-4"},
                    "sample": {"prompts": ["a cat [name]", {"prompt": "a dog", "seed": 7}], "sample_every": 5},
                }
            ],
        },
        "meta": {"name": "[name]", "version": "1.0"},
    }


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[..., Path]:
    """Write a mapping (or raw text) to tmp_path/<name> as YAML or JSON by the name's extension."""

    def write(content: dict[str, Any] | str, name: str = "job.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        elif path.suffix == ".json":
            path.write_text(json.dumps(content))
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path

    return write
