"""A finished run is recognised before anything loads; raising train.steps resumes it, and its trace goes on."""

from __future__ import annotations

import json
from pathlib import Path

import run
from extensions_built_in.sd_trainer.SDTrainer import SDTrainer
from tests.conftest import read_jsonl
from tests.trainer.conftest import write_config

NAME = "finished_test"


def _files(run_folder: Path) -> dict[Path, int]:
    """Every file of the run but the logs and traces (which a rerun appends to), with its mtime."""
    return {
        path: path.stat().st_mtime_ns
        for path in run_folder.rglob("*")
        if path.is_file() and not path.name.startswith(("trace", "metrics", "train.log"))
    }


def test_rerun_of_a_finished_run_says_so_at_once_and_more_steps_resume_it(tmp_path, tiny_ready, monkeypatch, capsys):
    settings = {"train.steps": 2, "save.save_every": 100, "model.verbose": True, "model.trace_every": 100}
    config = write_config(tmp_path, settings, name=NAME)
    run_folder = tmp_path / "output" / NAME
    assert run.main([str(config)]) == run.EXIT_OK
    lora = run_folder / f"{NAME}.safetensors"
    assert lora.is_file()
    before = _files(run_folder)

    def must_not_run(self, *args, **kwargs):
        raise AssertionError("a finished run loaded the model or encoded data")

    with monkeypatch.context() as patch:
        patch.setattr(SDTrainer, "_load_model", must_not_run)
        patch.setattr(SDTrainer, "_encode_data", must_not_run)
        patch.setattr(SDTrainer, "save", must_not_run)
        capsys.readouterr()
        assert run.main([str(config)]) == run.EXIT_OK
    output = "".join(capsys.readouterr())
    assert f"{NAME} is already finished: it reached step 2 of train.steps 2" in output
    assert f"LoRA: {lora}." in output
    assert "raise train.steps (it resumes from step 2)" in output and "new name (config.name)" in output
    assert _files(run_folder) == before

    # More steps: it resumes; the trace keeps every start, each marked with the step it starts from.
    assert run.main([str(write_config(tmp_path, {**settings, "train.steps": 3}, name=NAME))]) == run.EXIT_OK
    records = read_jsonl(run_folder / "trace.jsonl")
    assert [r["fields"]["resume_from_step"] for r in records if r["name"] == "trace_start"] == [0, 2, 2]
    finished = [r["fields"] for r in records if r["name"] == "run_finished"]
    assert len(finished) == 1 and finished[0]["lora"] == str(lora) and finished[0]["step"] == 2
    assert [r["fields"]["step"] for r in records if r["name"] == "resume"] == [2]
    steps = [r["fields"]["step"] for r in records if r["type"] == "span_begin" and r["name"] == "hook_train_loop"]
    assert steps == [0, 1, 2]
    chrome = json.loads((run_folder / "trace.json").read_text())
    assert len([e for e in chrome["traceEvents"] if e["name"] == "trace_start"]) == 3
