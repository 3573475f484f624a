"""status.json: written whole at start, on save and at the end; the end says how the run ended."""

from __future__ import annotations

import json
import os

import pytest

from toolkit.errors import ConfigError
from toolkit.logging.run_status import RunStatusError, RunStatusFile, read_run_status


def test_a_run_that_ends_normally_is_finished_at_its_last_step(tmp_path):
    status = RunStatusFile(tmp_path, steps=10, step=4)
    step = 4
    with status.recording(lambda: step):
        written = json.loads((tmp_path / "status.json").read_text())
        assert written["state"] == "running" and written["step"] == 4 and written["ended_at"] is None
        assert written["pid"] == os.getpid() and written["exit_code"] is None
        step = 8
        status.update(step)
        assert read_run_status(tmp_path).step == 8
        step = 10
    final = read_run_status(tmp_path)
    assert (final.state, final.step, final.steps, final.exit_code, final.error) == ("finished", 10, 10, 0, None)
    assert final.ended_at >= final.started_at


@pytest.mark.parametrize(
    ("raised", "state", "code", "error"),
    [
        (KeyboardInterrupt(), "stopped", 130, None),
        (ConfigError("train.dtype: fp16 needs a CUDA device"), "failed", 2, "ConfigError: train.dtype: fp16 needs a CUDA device"),
        (RuntimeError("out of memory\nmore detail"), "failed", 1, "RuntimeError: out of memory"),
    ],
)
def test_the_end_state_follows_what_stopped_the_run(tmp_path, raised, state, code, error):
    with pytest.raises(type(raised)):
        with RunStatusFile(tmp_path, steps=10).recording(lambda: 3):
            raise raised
    final = read_run_status(tmp_path)
    assert (final.state, final.step, final.exit_code, final.error) == (state, 3, code, error)


def test_a_missing_status_is_none_and_a_foreign_one_is_an_error_naming_the_file(tmp_path):
    assert read_run_status(tmp_path) is None
    (tmp_path / "status.json").write_text('{"state": "paused"}')
    with pytest.raises(RunStatusError, match="status.json: not a run status file"):
        read_run_status(tmp_path)
    record = {"state": "paused", "step": 1, "steps": 2, "started_at": "", "ended_at": None, "pid": 1, "exit_code": None, "error": None}
    (tmp_path / "status.json").write_text(json.dumps(record))
    with pytest.raises(RunStatusError, match="state 'paused' is not one of running, finished, stopped, failed"):
        read_run_status(tmp_path)
