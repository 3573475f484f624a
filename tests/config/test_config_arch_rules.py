"""Frame counts, sizes and sample defaults follow each process's `model.arch` (its registered ArchRules)."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.config import DatasetConfig, parse_config
from toolkit.errors import ConfigError
from toolkit.extensions import register_model_arch, registered_archs
from toolkit.models.arch_rules import ArchRules

TOY = ArchRules(
    "Toy", frame_step=4, size_multiple=16, min_sample_steps=3, default_fps=30.0, default_size=48, default_num_frames=5
)


@pytest.fixture(scope="module", autouse=True)
def toy_arch() -> None:
    """A second arch with other rules; its class path is never imported (the rules are read from the registry)."""
    if "toy_rules_arch" not in registered_archs():
        register_model_arch("toy_rules_arch", "no_such_package.toy:ToyModel", TOY)


def _generate(arch: str | None, **generate: Any) -> dict[str, Any]:
    model = {"name_or_path": "tiny"} | ({"arch": arch} if arch else {})
    return {"type": "generate", "model": model, "generate": {"prompts": ["a cat"], **generate}}


def _job(*processes: dict[str, Any]) -> dict[str, Any]:
    return {"job": "extension", "config": {"name": "rules", "process": list(processes)}}


def test_each_process_follows_its_own_arch() -> None:
    off_grid = {"width": 100, "num_frames": 7, "sample_steps": 1}
    job = parse_config(_job(_generate("toy_rules_arch", **off_grid), _generate(None, **off_grid)))
    toy, ltx2 = (process.generate for process in job.config.process)
    assert (toy.width, toy.height, toy.num_frames, toy.fps, toy.sample_steps) == (96, 48, 9, 30.0, 3)
    assert (ltx2.width, ltx2.height, ltx2.num_frames, ltx2.fps, ltx2.sample_steps) == (96, 64, 9, 24.0, 2)
    assert job.config.process[1].model.arch == "ltx2"  # the registered default
    assert job.notes.adjusted == [
        "config.process[0].generate.num_frames 7 -> 9 (Toy needs 4k+1 frames)",
        "config.process[0].generate.width 100 -> 96 (Toy needs multiples of 16)",
        "config.process[0].generate.sample_steps 1 -> 3 (Toy's scheduler needs at least 3 steps)",
        "config.process[1].generate.num_frames 7 -> 9 (LTX-2 needs 8k+1 frames)",
        "config.process[1].generate.width 100 -> 96 (LTX-2 needs multiples of 32)",
        "config.process[1].generate.sample_steps 1 -> 2 (LTX-2's scheduler needs at least 2 steps)",
    ]


def test_values_the_loader_cannot_move_are_refused_by_the_arch_s_rule() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_job(_generate("toy_rules_arch", width=-16, num_frames=5.5)))
    assert "config.process[0].generate.width: width -16 is not a positive multiple of 16 as Toy needs (nearest valid: 16)" in (
        caught.value.problems
    )


def test_a_block_validated_on_its_own_follows_the_default_arch(tmp_path) -> None:
    dataset = DatasetConfig(folder_path=str(tmp_path))
    assert (dataset.num_frames, dataset.resolution) == (9, [64])
    with pytest.raises(ValueError, match="12 frames is not 8k\\+1 as LTX-2 needs \\(nearest valid: 9 or 17\\)"):
        DatasetConfig(folder_path=str(tmp_path), num_frames=12)


@pytest.mark.parametrize(
    ("field", "value"), [("frame_step", 0), ("default_size", 40), ("default_num_frames", 6)]
)
def test_rules_that_contradict_themselves_are_refused(field: str, value: int) -> None:
    values = {"frame_step": 4, "size_multiple": 16, "default_size": 48, "default_num_frames": 5, field: value}
    with pytest.raises(ValueError, match=f"ArchRules\\('Bad'\\)"):
        ArchRules("Bad", **values)
