"""A clip that cannot be decoded: skipped and reported with on_corrupt: skip, a DataError naming it otherwise."""

from __future__ import annotations

import pytest

import run
from tests.trainer.conftest import build_trainer, copy_clips, write_config
from toolkit.errors import DataError


@pytest.fixture
def clips_with_a_corrupt_one(tmp_path):
    clips = copy_clips(tmp_path / "clips", 2)
    corrupt = clips / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # an mp4 header, then garbage
    corrupt.with_suffix(".txt").write_text("a clip that was cut off while copying")
    return clips, corrupt


def test_corrupt_clip_is_skipped_counted_and_training_goes_on(tmp_path, clips_with_a_corrupt_one, capsys):
    clips, corrupt = clips_with_a_corrupt_one
    config = write_config(
        tmp_path, {"datasets.0.folder_path": str(clips), "datasets.0.on_corrupt": "skip", "train.steps": 2}
    )
    trainer = build_trainer(config)
    trainer.run()
    assert [path.name for path, _ in trainer.data.skipped] == ["broken.mp4"]
    assert sorted(example.path.name for example in trainer.data.examples) == ["demo_00.mp4", "demo_01.mp4"]
    assert trainer.step == 2
    assert trainer.saved["final"].is_file()
    output = capsys.readouterr()
    summary = output.out + output.err
    assert "Done: 2 steps, 2 clips trained on, 1 skipped" in summary
    assert f"skipped {corrupt}" in summary


def test_corrupt_clip_stops_the_run_with_its_name(tmp_path, clips_with_a_corrupt_one, capsys):
    clips, corrupt = clips_with_a_corrupt_one
    config = write_config(tmp_path, {"datasets.0.folder_path": str(clips), "datasets.0.on_corrupt": "error"})
    with pytest.raises(DataError, match="broken.mp4"):
        build_trainer(config).run()
    assert not list((tmp_path / "output").rglob("*.safetensors"))

    capsys.readouterr()
    assert run.main([str(config)]) == 1
    error = capsys.readouterr().err
    # The loading progress bars come before it on stderr; the error is a line of its own.
    assert any(line.startswith("error: ") for line in error.splitlines()) and str(corrupt) in error
