"""Two CPU processes (gloo) under `accelerate launch` train one LoRA: the one a single process trains
with the doubled batch on the same data order, written once, traced once; a SIGTERM that reaches one
process stops both at the same step with one checkpoint, and the same command resumes; a killed rank
ends the run. Two of the four clips are held out (validation_split) and evaluated, one by each
process: the evaluation losses are the single process's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.conftest import REPO_ROOT, build_trainer, child_env, copy_clips, lora_tensors, write_config

NAME = "data_parallel"
PROBE = REPO_ROOT / "tests" / "trainer" / "data_parallel_probe.py"
# --multi_gpu picks torch.distributed.run; on a machine without GPUs each process trains on the CPU with gloo
# (`--cpu` would start one process: accelerate runs several CPU processes only through MPI).
LAUNCH = [
    sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
]
SETTINGS = {
    "train.steps": 3,
    "train.batch_size": 1,
    "train.gradient_accumulation": 2,
    "train.lr": 1e-2,
    "save.dtype": "float32",
    "save.save_every": 2,
    "model.verbose": True,
    "logging.log_every": 1,  # metrics.jsonl gets every step
    "model.trace_every": 1,
    "train.disable_sampling": False,  # sampled by the main process only, at step 2 and at the end
    "train.skip_first_sample": True,
    "sample.sample_every": 2,
    "sample.sample_steps": 2,
    "sample.prompts": ["a red square moving left to right, with a 440 Hz tone"],
    "train.validation_split": 0.5,  # two clips trained, two evaluated (one per process)
    "train.eval_every": 2,
    "train.eval_batch_size": 5,  # a clip's five noise levels in one forward
    "save.keep_best": True,
}


def _launch(config: Path, probe_dir: Path, log: Path, sigterm: str = "", launch: list[str] = LAUNCH) -> subprocess.Popen:
    env = {**child_env(), "DATA_PARALLEL_PROBE_DIR": str(probe_dir), "DATA_PARALLEL_PROBE_SIGTERM": sigterm}
    with open(log, "w") as handle:
        return subprocess.Popen(
            [*launch, str(PROBE), str(config)], cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def _files(run_folder: Path) -> list[str]:
    return sorted(str(path.relative_to(run_folder)) for path in run_folder.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, tiny_ready):
    """A 2-process run (batch 1 x 2 processes x accumulation 2, four clips) that rank 1's SIGTERM stops
    after step 2 of 3, then the same command again, which resumes and finishes; shared by the tests below."""
    folder = tmp_path_factory.mktemp("data_parallel")
    clips = copy_clips(folder / "clips", 4)
    config = write_config(folder / "two", {**SETTINGS, "datasets.0.folder_path": str(clips)}, name=NAME)
    outputs, codes = [], []
    for launch, sigterm in (("stopped", "1:1"), ("resumed", "")):
        probe_dir = folder / launch
        probe_dir.mkdir()
        process = _launch(config, probe_dir, folder / f"{launch}.log", sigterm)
        process.wait(timeout=1800)
        outputs.append((folder / f"{launch}.log").read_text())
        codes.append(process.returncode)
    assert codes[1] == 0, outputs
    return {"run_folder": folder / "two" / "output" / NAME, "probe": folder / "resumed", "outputs": outputs,
            "codes": codes, "clips": clips}


@pytest.mark.slow
def test_a_stop_reaching_one_rank_stops_both_at_one_step_and_the_run_resumes(two_processes):
    stopped, resumed = two_processes["outputs"]
    assert two_processes["codes"][0] != 0  # each process exits 130 (interrupted); the launcher reports it
    assert "[rank 1] WARNING data_parallel: Stopped by SIGTERM at step 2; saved." in stopped
    assert "Stopped by another process at step 2; saved." in stopped  # rank 0, which got no signal
    assert "Resuming data_parallel from step 2" in resumed
    assert "hook_train_loop step=2 " in resumed and "hook_train_loop step=1 " not in resumed


@pytest.fixture(scope="module")
def one_process(two_processes, tmp_path_factory):
    """The same run in one process with the doubled batch."""
    folder = tmp_path_factory.mktemp("one_process")
    single = build_trainer(
        write_config(folder, {**SETTINGS, "train.batch_size": 2, "datasets.0.folder_path": str(two_processes["clips"])}, name=NAME)
    )
    single.run()
    return {"trainer": single, "run_folder": folder / "output" / NAME}


@pytest.mark.slow
def test_every_rank_ends_with_the_lora_of_one_process_with_the_doubled_batch(two_processes, one_process):
    ranks = [load_file(str(two_processes["probe"] / f"rank{rank}.safetensors")) for rank in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and len(ranks[0]) > 0
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # one update, applied on both ranks

    saved = load_file(str(two_processes["run_folder"] / f"{NAME}.safetensors"))
    expected = lora_tensors(one_process["trainer"])
    assert expected.keys() == ranks[0].keys()
    for key, tensor in expected.items():
        torch.testing.assert_close(ranks[0][key], tensor, rtol=1e-4, atol=1e-5)  # float sums in another order
        assert tensor.abs().max() > 0
    assert len(saved) == len(expected)
    single_files = _files(one_process["run_folder"])
    assert _files(two_processes["run_folder"]) == single_files  # exactly one set of output files
    assert len([name for name in single_files if name.startswith("samples/") and name.endswith(".mp4")]) == 2


@pytest.mark.slow
def test_the_evaluation_loss_of_two_processes_is_the_one_of_one_process(two_processes, one_process):
    """Each process evaluates one held-out clip and the sums are added up; the stopped run evaluated step 0,
    the resumed one steps 2 (the stop came before its evaluation) and 3."""

    def evaluations(run_folder):
        records = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: {k: v for k, v in r["metrics"].items() if "Eval_Loss" in k}
                for r in records if "06_Diffusion/Eval_Loss" in r["metrics"]}

    assert [e.path.name for e in one_process["trainer"].data.held_out] == ["demo_02.mp4", "demo_03.mp4"]
    two, one = evaluations(two_processes["run_folder"]), evaluations(one_process["run_folder"])
    assert sorted(two) == sorted(one) == [0, 2, 3]
    for step, metrics in one.items():
        assert two[step].keys() == metrics.keys() and len(metrics) == 18  # loss, video, audio; each at 5 levels
        for name, value in metrics.items():
            assert two[step][name] == pytest.approx(value, rel=1e-5), (step, name)
    assert one[3]["06_Diffusion/Eval_Loss"] < one[0]["06_Diffusion/Eval_Loss"]  # trained: not equal by accident
    held_out = [line for line in two_processes["outputs"][1].splitlines() if line.startswith("[VERBOSE]   held_out ")]
    assert len(held_out) == 1 and "Evaluating 2 held-out clips" in held_out[0] and "clips_here=1" in held_out[0]


@pytest.mark.slow
def test_main_process_alone_writes_and_traces(two_processes):
    run_folder, outputs = two_processes["run_folder"], two_processes["outputs"]
    loras = [f"{NAME}.safetensors", f"{NAME}_000000002.safetensors", f"{NAME}_000000003.safetensors", f"{NAME}_best.safetensors"]
    assert sorted(p.name for p in run_folder.glob("*.safetensors")) == loras
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == ["step_000000002", "step_000000003"]
    for output in outputs:
        starts = [line for line in output.splitlines() if line.startswith("[VERBOSE] trace_start ")]
        assert len(starts) == 1 and "rank=0 world_size=2" in starts[0]
        assert "effective_batch=4" in output
    verbose = [line for output in outputs for line in output.splitlines() if "[VERBOSE]" in line]
    for step in range(3):
        assert sum(f"hook_train_loop step={step} " in line for line in verbose) == 1
    records = [json.loads(line) for line in (run_folder / "trace.jsonl").read_text().splitlines()]
    starts = [r["fields"] for r in records if r["name"] == "trace_start"]
    assert [(f["world_size"], f["resume_from_step"]) for f in starts] == [(2, 0), (2, 2)]
    metrics_steps = [json.loads(line)["step"] for line in (run_folder / "metrics.jsonl").read_text().splitlines()
                     if "01_Training/Loss" in json.loads(line)["metrics"]]
    assert metrics_steps == [0, 1, 2]
    assert "[rank 1]" not in (run_folder / "train.log").read_text()


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_with_an_error(tmp_path, tiny_ready, two_processes):
    config = write_config(
        tmp_path, {**SETTINGS, "train.steps": 100_000, "save.save_every": 100_000, "model.verbose": False,
                   "train.disable_sampling": True, "train.validation_split": None, "train.eval_every": None,
                   "save.keep_best": False, "datasets.0.folder_path": str(two_processes["clips"])}, name=NAME,
    )
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    process = _launch(config, probe_dir, tmp_path / "killed.log")
    try:
        pid_file = probe_dir / "rank1.pid"
        deadline = time.monotonic() + 1800
        while not (pid_file.exists() and pid_file.read_text()):
            assert process.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() < deadline, "rank 1 never started a step"
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        process.wait(timeout=600)  # a guard against a hang only: no duration is asserted
    finally:
        if process.poll() is None:
            process.kill()
    output = (tmp_path / "killed.log").read_text()
    assert process.returncode != 0
    assert "Signal 9 (SIGKILL)" in output or "SIGKILL" in output, output
    assert not list((tmp_path / "output" / NAME).glob("*.safetensors"))


@pytest.mark.parametrize("launch", ["DEEPSPEED", "MEGATRON_LM"])
def test_a_sharded_launch_is_a_config_error_before_anything_loads(monkeypatch, launch):
    from extensions_built_in.sd_trainer.distributed_training import DataParallel
    from toolkit.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv(f"ACCELERATE_USE_{launch}", "true")
    with pytest.raises(ConfigError, match=f"accelerate launch with {launch}: .*--multi_gpu"):
        DataParallel.start("cuda", timeout_minutes=1)


def test_one_process_has_no_accelerator_and_changes_nothing(monkeypatch):
    from extensions_built_in.sd_trainer.distributed_training import DataParallel

    for variable in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    single = DataParallel.start("cpu", timeout_minutes=1)
    assert not single.active and single.is_main and single.world_size == 1
    assert single.share([4, 5, 6]) == [4, 5, 6] and single.effective_batch(2, 3) == 6
    parameter = torch.nn.Parameter(torch.ones(3))
    parameter.grad = torch.full((3,), 2.0)
    totals, aux = single.average_step([parameter], torch.tensor([1.0, 2.0, 3.0]), {"preservation": 0.5})
    assert torch.equal(parameter.grad, torch.full((3,), 2.0)) and totals.tolist() == [1.0, 2.0, 3.0]
    assert aux == {"preservation": 0.5} and single.any_process(True) and not single.any_process(False)
