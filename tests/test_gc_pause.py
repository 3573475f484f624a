"""Garbage collection paused while the training stack is imported (toolkit/gc_pause.py): the blocks that
pause it, and the collector running again afterwards."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import yaml

from toolkit.gc_pause import collection_paused

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_collector_runs_again_after_the_block_however_it_ends_and_an_outer_pause_is_kept():
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("a failed import")
    assert gc.isenabled()
    with collection_paused(active=False):
        assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()  # the outer pause is not ended by an inner block
    finally:
        gc.enable()


def test_the_ui_checks_a_job_with_the_collector_paused(tmp_path, monkeypatch, tiny_model_dir):
    """The UI's first check imports the model code into the server (resolving the process classes)."""
    from ui import job_check
    from ui.folders import Folders

    seen = []
    resolve = job_check.resolve_process_classes
    monkeypatch.setattr(job_check, "resolve_process_classes", lambda job: seen.append(gc.isenabled()) or resolve(job))
    raw = yaml.safe_load((REPO_ROOT / "config/examples/train_lora_ltx2_tiny.yaml").read_text())
    process = raw["config"]["process"][0]
    process["training_folder"] = str(tmp_path / "runs")
    process["datasets"][0]["folder_path"] = str(REPO_ROOT / "data" / "demo_clips")
    (tmp_path / "runs").mkdir()
    folders = Folders([tmp_path / "runs"], [REPO_ROOT / "data"], REPO_ROOT)
    check = job_check.check_job(yaml.safe_dump(raw), folders, dry_run=False)
    assert check.ok, check.problems
    assert seen == [False] and gc.isenabled()
