"""Fixtures of the config tests: a dataset folder, a valid job mapping, and a writer for job files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(scope="session")
def clips_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder holding one demo clip and its caption, so the pre-load checks pass."""
    folder = tmp_path_factory.mktemp("clips")
    demo = Path(__file__).resolve().parent.parent.parent / "data" / "demo_clips"
    for name in ("demo_00.mp4", "demo_00.txt"):
        shutil.copyfile(demo / name, folder / name)
    return folder


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
