"""Listing a dataset folder and reading captions, without torch (the pre-load checks use these too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.data.files import caption_path, list_media_files, read_caption
from toolkit.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_lists_media_only_sorted_without_hidden_files(tmp_path: Path) -> None:
    for name in ("b.MP4", "a.png", ".hidden.mp4", "notes.txt", "clip.gif", "c.webm"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.mp4").mkdir()
    assert [path.name for path in list_media_files(tmp_path)] == ["a.png", "b.MP4", "c.webm"]


def test_caption_is_read_stripped_or_defaulted(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    (tmp_path / "clip.caption").write_text("  a red square \n", encoding="utf-8")
    assert caption_path(clip, ".caption") == caption_path(clip, "caption") == tmp_path / "clip.caption"
    assert read_caption(clip, "caption") == "a red square"
    assert read_caption(clip, "txt", default_caption="a shape") == "a shape"


@pytest.mark.parametrize(("content", "state"), [(None, "does not exist"), ("  \n", "is empty")])
def test_missing_caption_names_file_caption_ext_and_default_caption(tmp_path: Path, content, state) -> None:
    clip = tmp_path / "clip.mp4"
    if content is not None:
        (tmp_path / "clip.txt").write_text(content)
    with pytest.raises(DataError) as raised:
        read_caption(clip, "txt")
    message = str(raised.value)
    assert message.startswith(f"{clip}: no caption: clip.txt {state} (caption_ext: 'txt', no default_caption)")
    assert "set caption_ext" in message and "set default_caption" in message


def test_caption_that_is_not_utf8_names_the_caption_file(tmp_path: Path) -> None:
    (tmp_path / "clip.txt").write_bytes(b"\xff\xfe caf\xe9")
    with pytest.raises(DataError, match=r"clip\.txt: caption is not UTF-8 text"):
        read_caption(tmp_path / "clip.mp4", "txt")


def test_listing_imports_neither_torch_nor_av() -> None:
    code = "import sys, toolkit.data.files; print(sorted(m for m in ('torch', 'av') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
