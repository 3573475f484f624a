"""toolkit.atomic_write: the one way files are replaced (LoRA files, caches, single files, clips, traces)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from toolkit.atomic_write import atomic_write


def test_the_new_contents_replace_the_old_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "weights.safetensors"
    target.write_text("old")
    with atomic_write(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".safetensors" and temporary != target
        save_file({"w": torch.arange(4.0)}, str(temporary))
        assert target.read_text() == "old"  # readers see the old file until the body is done
    assert load_file(str(target))["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.safetensors"]


def test_a_failed_write_leaves_the_old_file_and_removes_the_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "trace.json"
    target.write_text('{"old": true}')
    with pytest.raises(OSError, match="disk full"):
        with atomic_write(target) as temporary:
            temporary.write_text('{"new": tr')
            raise OSError(28, "disk full")
    assert target.read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]


def test_a_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    with pytest.raises(ValueError):
        with atomic_write(target, durable=False) as temporary:
            temporary.write_bytes(b"half")
            raise ValueError("encoder failed")
    assert list(tmp_path.iterdir()) == []


def test_durable_writes_are_flushed_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append("replace"), real_replace(a, b))[1])
    with atomic_write(tmp_path / "a.txt") as temporary:
        temporary.write_text("a")
    with atomic_write(tmp_path / "b.txt", durable=False) as temporary:
        temporary.write_text("b")
    assert order == ["fsync", "replace", "replace"]
    assert (tmp_path / "a.txt").read_text() == "a" and (tmp_path / "b.txt").read_text() == "b"


def test_two_writers_of_one_path_get_two_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "entry.safetensors"
    with atomic_write(target) as first, atomic_write(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer body finishes last and wins, whole
