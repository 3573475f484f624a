"""What the UI reads from run folders and how it decides, on small folders written here (no server, no training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from toolkit.logging.run_status import RunStatus
from ui.folders import Folders, NotFound, PathRefused, inside
from ui.jobs import Launches
from ui.job_form import FIELDS, field_help, form_values, job_from_form, load_example
from ui.metrics import progress, read_metrics
from toolkit.run_lock import LockHolder
from ui.run_state import infer_state, summarize
from ui.trace_view import read_trace


def _status(state: str, pid: int, started_at: str = "2020-01-01T00:00:00+00:00", **values) -> RunStatus:
    fields = {"step": 3, "steps": 10, "ended_at": None, "exit_code": None, "error": None, **values}
    return RunStatus(state, started_at=started_at, pid=pid, **fields)


@pytest.fixture
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_running_status_is_believed_only_while_its_process_lives(tmp_path, dead_pid):
    alive = _status("running", os.getpid(), started_at="2999-01-01T00:00:00+00:00")
    assert infer_state(tmp_path, alive, None, None) == ("running", None)
    state, error = infer_state(tmp_path, _status("running", dead_pid), None, None)
    assert state == "failed" and f"process {dead_pid} ended without recording how it ended" in error
    # the same pid, now a younger process than the one that wrote the status (a recycled pid): not the run
    recycled = _status("running", os.getpid(), started_at="2000-01-01T00:00:00+00:00")
    assert infer_state(tmp_path, recycled, None, None)[0] == "failed"


def test_runs_without_a_status_are_read_from_what_they_left(tmp_path, dead_pid):
    run = tmp_path / "old_run"
    (run / "checkpoints" / "step_000000005").mkdir(parents=True)
    (run / "checkpoints" / "step_000000005" / "state.json").write_text("{}")
    assert infer_state(run, None, None, None) == ("stopped", None)
    (run / "train.log").write_text("2026-01-01 INFO    start\nerror: config.process[0].train.lr: 'x' is not a number\n")
    assert infer_state(run, None, None, None) == ("failed", "error: config.process[0].train.lr: 'x' is not a number")
    (run / "old_run.safetensors").write_bytes(b"")
    assert infer_state(run, None, None, None) == ("finished", None)
    live_lock = LockHolder(os.getpid(), os.uname().nodename, "2999-01-01T00:00:00+00:00", ["run.py", "job.yaml"])
    assert infer_state(run, None, live_lock, None) == ("running", None)
    stale_lock = LockHolder(dead_pid, os.uname().nodename, "2999-01-01T00:00:00+00:00", ["run.py"])
    assert infer_state(run, None, stale_lock, None) == ("finished", None)


def test_the_ui_s_launches_say_queued_and_how_a_process_it_started_ended(tmp_path, dead_pid):
    run = tmp_path / "runs" / "job"
    run.mkdir(parents=True)
    (run / "job.yaml").write_text("job: extension\n")
    launches = Launches(tmp_path / "jobs.sqlite")
    first = launches.queue(run, run / "job.yaml", "cuda")
    assert infer_state(run, None, None, launches.latest(run)) == ("queued", None)
    launches.mark_started(first, dead_pid, 0.0)
    launches.mark_ended(first, 130)
    # the trainer's status says running (it was killed before writing its end) but the UI saw exit code 130
    assert infer_state(run, _status("running", dead_pid), None, launches.latest(run)) == ("stopped", None)
    terminated = launches.queue(run, run / "job.yaml", "cuda")
    launches.mark_started(terminated, dead_pid, 0.0)
    launches.mark_ended(terminated, 143)  # SIGTERM (toolkit.stopping): stopped too, not failed
    assert infer_state(run, _status("running", dead_pid), None, launches.latest(run)) == ("stopped", None)
    launches.mark_ended(launches.queue(run, run / "job.yaml", "cuda:0"), None)
    assert [launch.device for launch in launches.of_run(run)] == ["cuda:0", "cuda:0", "cuda:0"]
    summary = summarize(0, run, launches)
    assert (summary.state, summary.started_by) == ("queued", "ui")


def test_metrics_are_read_from_an_offset_in_whole_lines_and_speed_follows_the_latest_stretch(tmp_path):
    lines = [
        {"step": step, "time": 100.0 + step, "metrics": {"01_Training/Loss": 1.0 / (step + 1), "04_Learning_Rate/Learning_Rate": 1e-3}}
        for step in range(6)
    ]
    # stopped after step 5, resumed from step 4 at half the speed; a NaN loss is sent as null
    lines += [{"step": step, "time": 200.0 + 2 * step, "metrics": {"01_Training/Loss": float("nan") if step == 6 else 0.5}} for step in (4, 5, 6, 7)]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (tmp_path / "metrics.jsonl").write_text(text + '{"step": 8, "ti')  # the writer is midway through a line
    whole = read_metrics(tmp_path)
    assert whole.offset == len(text.encode())
    columns = whole.as_json()
    assert columns["steps"] == list(range(8)) and columns["loss"][4:] == [0.5, 0.5, None, 0.5]
    assert columns["lr"][:6] == [1e-3] * 6 and columns["lr"][6:] == [None, None]
    later = read_metrics(tmp_path, whole.offset)
    assert later.as_json()["steps"] == [] and later.offset == whole.offset
    recent = progress(whole)
    assert (recent.last_step, recent.last_loss) == (7, 0.5)
    assert recent.steps_per_second == pytest.approx(0.5)  # 3 steps in 6 s since the resume, not the earlier pace


def test_the_evaluation_loss_is_a_series_of_its_own_at_the_steps_it_was_logged(tmp_path):
    lines = [{"step": step, "time": 100.0 + step, "metrics": {"01_Training/Loss": 1.0}} for step in range(4)]
    lines += [{"step": step, "time": 101.0 + step, "metrics": {"06_Diffusion/Eval_Loss": 2.0 - step / 4,
                                                              "06_Diffusion/Eval_Loss/sigma_0.50": 9.0}} for step in (0, 2, 4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in sorted(lines, key=lambda l: l["time"])))
    columns = read_metrics(tmp_path).as_json()
    assert columns["steps"] == [0, 1, 2, 3, 4]
    assert columns["eval_loss"] == [2.0, None, 1.5, None, 1.0] and columns["eval_loss_ema"] == [None] * 5
    assert columns["loss"] == [1.0, 1.0, 1.0, 1.0, None]


def test_paths_are_refused_outside_their_folder_also_through_a_link(tmp_path):
    base = tmp_path / "runs"
    (base / "run" / "samples").mkdir(parents=True)
    (base / "run" / "samples" / "a.mp4").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("not served")
    (base / "run" / "out").symlink_to(tmp_path)
    (base / "run" / "in").symlink_to(base / "run" / "samples")
    assert inside(base, "run/samples/a.mp4") == base / "run" / "samples" / "a.mp4"
    assert inside(base, "run/in/a.mp4") == base / "run" / "samples" / "a.mp4"
    for refused in ("../x", "run/../../x", "/etc/passwd", "run\\..\\x", "run/out/secret.txt", "a\x00b"):
        with pytest.raises(PathRefused):
            inside(base, refused)
    with pytest.raises(NotFound):
        inside(base, "run/samples/b.mp4")
    folders = Folders([base], [tmp_path / "data"], tmp_path)
    with pytest.raises(PathRefused):
        folders.run_folder(0, "..")
    with pytest.raises(NotFound):
        folders.run_folder(1, "run")


def test_the_form_writes_its_values_into_the_example_and_reads_them_back(tmp_path):
    folders = Folders([tmp_path / "runs"], [tmp_path], tmp_path)
    example = load_example("train_lora_ltx2_tiny.yaml")
    values = form_values(example, folders)
    assert values["steps"] == "100" and values["resolution"] == "64" and values["verbose"] == "on"
    values.update(name="mine", steps="12", resolution="32, 64", prompts="one\n\ntwo\n", verbose="", lr="oops")
    raw = yaml.safe_load(job_from_form(example, values))
    process = raw["config"]["process"][0]
    assert raw["config"]["name"] == "mine" and process["train"]["steps"] == 12
    assert process["datasets"][0]["resolution"] == [32, 64] and (process["sample"]["width"], process["sample"]["height"]) == (32, 32)
    assert process["sample"]["prompts"] == ["one", "two"] and process["model"]["verbose"] is False
    assert process["train"]["lr"] == "oops"  # left as typed, for the schema to name
    assert process["train"]["optimizer"] == example["config"]["process"][0]["train"]["optimizer"]  # untouched keys stay
    assert form_values(raw, folders)["resolution"] == "32, 64"
    assert all(field_help(field.key) for field in FIELDS if field.key.startswith("config.process"))


def test_the_trace_becomes_lanes_and_the_plan_meets_measured_memory(tmp_path):
    def record(kind, name, ts, span_id, memory=None, fields=None):
        return {"type": kind, "name": name, "ts": ts, "depth": 1, "pid": 1, "span_id": span_id, "memory": memory, "fields": fields or {}}

    records = [
        record("event", "trace_start", 0.0, None, fields={"resume_from_step": 0}),
        record("span_begin", "load_model", 0.0, 1, {"rss_mb": 100.0}),
        record("span_begin", "memory_plan", 0.1, 2),
        record("span_end", "memory_plan", 0.2, 2, fields={"totals": {"host loading (peak at vae)": 50 * 2**20, "device training": 300 * 2**20}, "device_budget": 200 * 2**20, "host_budget": None, "fits": False}),
        record("span_end", "load_model", 1.0, 1, {"rss_mb": 180.0}),
        record("span_begin", "hook_train_loop", 1.0, 3, {"rss_mb": 180.0, "cuda_peak_mb": 250.0}),
        record("span_end", "hook_train_loop", 1.5, 3, {"rss_mb": 190.0, "cuda_peak_mb": 280.0}),
        record("event", "trace_start", 10.0, None, fields={"resume_from_step": 4}),
        record("span_begin", "hook_train_loop", 10.0, 1, {"rss_mb": 170.0}),
    ]
    (tmp_path / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"type": "span_')
    first, resumed = read_trace(tmp_path)
    assert [lane.name for lane in first.lanes] == ["load_model", "memory_plan", "hook_train_loop"]
    assert first.lanes[2].spans[0].seconds == pytest.approx(0.5)
    plan = {(row.memory, row.label): row for row in first.plan}
    assert plan[("host", "loading (peak at vae)")].measured_mb == 180.0
    training = plan[("device", "training")]
    assert (training.planned_mb, training.budget_mb, training.measured_mb, training.over_budget) == (300.0, 200.0, 280.0, True)
    assert first.plan_fits is False
    assert resumed.resume_from_step == 4 and not resumed.lanes[0].spans[0].ended  # killed: never ended


def test_stop_reaches_a_command_line_run_only_while_its_pid_is_that_run(tmp_path):
    from ui.job_queue import ActionRefused, JobQueue

    run = tmp_path / "runs" / "cli"
    run.mkdir(parents=True)
    folders = Folders([tmp_path / "runs"], [tmp_path], tmp_path)
    queue = JobQueue(folders, Launches(tmp_path / "jobs.sqlite"))
    # a stand-in for run.py: says when Ctrl-C reaches it
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGINT, lambda *a: (print('interrupted', flush=True), sys.exit(130)))\n"
         "print('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline() == "ready\n"
        record = {"step": 2, "steps": 10, "ended_at": None, "exit_code": None, "error": None}
        older = {"state": "running", "pid": child.pid, "started_at": "2000-01-01T00:00:00+00:00", **record}
        (run / "status.json").write_text(json.dumps(older))  # the pid was recycled by a younger process
        with pytest.raises(ActionRefused, match="cli is not running"):
            queue.stop(0, run)
        (run / "status.json").write_text(json.dumps({**older, "started_at": "2999-01-01T00:00:00+00:00"}))
        assert queue.stop(0, run).startswith("stopping")
        assert child.stdout.readline() == "interrupted\n" and child.wait(timeout=30) == 130
    finally:
        child.kill()


def test_a_job_that_never_started_is_queued_again_when_its_database_is_gone(tmp_path):
    from ui.job_queue import JobQueue

    (tmp_path / "runs" / "waiting").mkdir(parents=True)
    (tmp_path / "runs" / "waiting" / "job.yaml").write_text(
        "job: extension\nconfig:\n  name: waiting\n  process:\n    - type: sd_trainer\n      device: cuda\n")
    (tmp_path / "runs" / "ran").mkdir()
    (tmp_path / "runs" / "ran" / "job.yaml").write_text("job: extension\n")
    (tmp_path / "runs" / "ran" / "status.json").write_text("{}")
    folders = Folders([tmp_path / "runs"], [tmp_path], tmp_path)
    launches = Launches(tmp_path / "jobs.sqlite")
    assert JobQueue(folders, launches).requeue_unstarted() == 1
    (queued,) = launches.in_state("queued")
    assert (queued.run_folder.name, queued.config_path.name, queued.device) == ("waiting", "job.yaml", "cuda:0")
    assert JobQueue(folders, launches).requeue_unstarted() == 0  # once


def test_a_queued_job_waits_while_a_command_line_run_holds_its_device(tmp_path, dead_pid, monkeypatch):
    from ui import job_queue
    from ui.job_queue import JobQueue

    runs = tmp_path / "runs"
    cli = runs / "cli"
    cli.mkdir(parents=True)
    (cli / "job.yaml").write_text("job: extension\nconfig:\n  name: cli\n  process:\n    - type: sd_trainer\n      device: cuda\n")
    status = {"state": "running", "pid": os.getpid(), "started_at": "2999-01-01T00:00:00+00:00", "step": 2, "steps": 10,
              "ended_at": None, "exit_code": None, "error": None}
    (cli / "status.json").write_text(json.dumps(status))
    (runs / "waiting").mkdir()
    (runs / "waiting" / "job.yaml").write_text("job: extension\n")
    folders = Folders([runs], [tmp_path], tmp_path)
    launches = Launches(tmp_path / "jobs.sqlite")
    started = []
    monkeypatch.setattr(job_queue, "start_run", lambda config, *args: started.append(config) or subprocess.Popen([sys.executable, "-c", "pass"]))
    queue = JobQueue(folders, launches)
    assert queue._devices_of_command_line_runs() == {"cuda:0"}
    queue.queue_new(runs / "waiting", runs / "waiting" / "job.yaml", "cuda", alongside=False)
    assert started == [] and [launch.run_folder.name for launch in launches.in_state("queued")] == ["waiting"]

    (cli / "status.json").write_text(json.dumps({**status, "pid": dead_pid}))  # the command-line run is gone
    assert queue._devices_of_command_line_runs() == set()
    queue.tick()
    assert started == [runs / "waiting" / "job.yaml"]
