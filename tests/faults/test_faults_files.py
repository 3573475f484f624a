"""Fault suite, files: names too long for the file system, a read-only or unwritable folder, a full disk, and the
run folder's lock.

Each error ends in one line naming the path and what survived, exit 1 (2 for a name the config
can fix before loading). The kernel's own errors are used where a test can cause them without
root tricks: ENAMETOOLONG from a real 300-byte name, EACCES from a read-only folder (as root,
which may write anywhere, the write runs in a forked child that has dropped to user `nobody`);
EROFS, which needs a read-only mount, is raised by a patched mkdir.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import run
from extensions_built_in.sd_trainer import checkpoints
from extensions_built_in.sd_trainer.run_guard import RunGuard
from extensions_built_in.sd_trainer.save_space import check_room
from tests.faults.conftest import copy_trained, training_job, write_yaml
from tests.faults.test_faults_resume import SAVES, _files, _LoraWriter
from toolkit.errors import FileSystemError, RunFolderInUse
from toolkit.run_lock import LOCK_FILE, RunLock, read_lock

NOBODY = 65534


@pytest.mark.parametrize(
    "name, expected",
    [("x" * 240, "is 240 bytes in UTF-8, too long"), ("字" * 100, "is 300 bytes in UTF-8 (100 characters), too long")],
    ids=["240_bytes", "100_cjk_characters"],
)
def test_a_name_too_long_for_the_file_system_stops_before_loading(name, expected, tmp_path, capsys) -> None:
    job = training_job(tmp_path)
    job["config"]["name"] = name
    assert run.main([str(write_yaml(tmp_path / "job.yaml", job))]) == 2
    error = capsys.readouterr().err
    assert f"- config.name: {name[:20]!r}... {expected} for the file system of {tmp_path / 'out'}" in error, error
    assert "takes file names of at most 255 bytes" in error and "shorten config.name to at most 204 bytes" in error
    assert not (tmp_path / "out").exists()


def _save_step_6(run_folder: Path, state_from: Path | None = None) -> None:
    """The trainer's save of step 6 (LoRA file, then the resume folder), from the step 4 save's state."""
    from toolkit.config import SaveConfig

    state = checkpoints.load_training_state(state_from or run_folder / "checkpoints" / SAVES[1])
    state.step, state.extra = 6, {"name": "fault"}
    checkpoints.save_training_state(_LoraWriter(), run_folder, "fault", state, SaveConfig(dtype="float32"), "{}", 3)


def _saving(guard: RunGuard):
    return guard.during("saving step 6")


def test_a_read_only_file_system_during_a_save_is_one_line_and_keeps_the_last_save(trained_run, tmp_path, monkeypatch):
    _, run_folder = copy_trained(trained_run, tmp_path)
    before = _files(run_folder / "checkpoints")
    real_mkdir = Path.mkdir

    def read_only(path, *args, **kwargs):
        if path.name.endswith(".partial"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    guard = RunGuard(run_folder)
    with pytest.raises(FileSystemError) as raised, guard.reporting(), _saving(guard):
        _save_step_6(run_folder)
    assert str(raised.value) == (
        f"{run_folder / 'checkpoints' / '.step_000000006.partial'}: the file system is read-only (EROFS) while saving "
        f"step 6. The last save, {run_folder / 'checkpoints' / SAVES[1]} (step 4), is intact: make it writable or "
        "choose another training_folder, then run the same config again to resume from it."
    )
    assert run.exit_code(raised.value) == 1
    assert _files(run_folder / "checkpoints") == before
    assert checkpoints.load_training_state(run_folder / "checkpoints" / SAVES[1]).step == 4


def test_a_name_the_kernel_refuses_is_one_line(trained_run, tmp_path) -> None:
    _, run_folder = copy_trained(trained_run, tmp_path)
    lora = checkpoints.load_training_state(run_folder / "checkpoints" / SAVES[1])
    too_long = run_folder / ("y" * 300 + ".safetensors")
    guard = RunGuard(run_folder)
    with pytest.raises(FileSystemError) as raised, guard.reporting(), _saving(guard):
        _LoraWriter().save_model(too_long, lora.lora_state, "diffusers", lora.lora_state[next(iter(lora.lora_state))].dtype, {}, 4.0)
    message = str(raised.value)
    assert message.startswith(f"{too_long}: the name is too long for the file system (ENAMETOOLONG) while saving step 6.")
    assert message.endswith("is intact: shorten config.name, then run the same config again to resume from it.")
    assert not list(run_folder.glob(".y*"))  # no temporary file left


def _write_in_read_only_folder(run_folder: Path) -> str:
    """The save of step 6 into a read-only run folder; returns the error's message."""
    guard = RunGuard(run_folder)
    try:
        with guard.reporting(), _saving(guard):
            _save_step_6(run_folder, state_from=run_folder / "checkpoints" / SAVES[1])
    except FileSystemError as error:
        return str(error)
    return "no error"


def _as_nobody(work) -> str:
    """`work()` in a forked child running as user nobody (root bypasses file permissions); its result."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = work()
        except BaseException as error:  # noqa: BLE001 - whatever happened goes back to the test
            result = f"child failed: {error!r}"
        os.write(writer, result.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        result = pipe.read()
    os.waitpid(child, 0)
    return result


def test_a_folder_without_write_permission_is_one_line_and_keeps_the_last_save(trained_run) -> None:
    # tmp_path lies under a folder only root may enter; the child running as nobody must reach this one
    folder = Path(tempfile.mkdtemp(prefix="ltx2-trace-eacces-"))
    try:
        shutil.copytree(trained_run / "out", folder / "out")
        run_folder = folder / "out" / "fault"
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        for path in (run_folder, run_folder / "checkpoints"):
            path.chmod(0o555)  # read-only for everyone: no new file or folder can be made in them
        before = _files(run_folder / "checkpoints")
        message = _as_nobody(lambda: _write_in_read_only_folder(run_folder)) if os.geteuid() == 0 else (
            _write_in_read_only_folder(run_folder)
        )
        assert message == (
            f"{run_folder / 'fault_000000006.safetensors'}: permission denied (EACCES) while saving step 6. "
            f"The last save, {run_folder / 'checkpoints' / SAVES[1]} (step 4), is intact: give this user write access "
            "or choose another training_folder, then run the same config again to resume from it."
        )
        assert _files(run_folder / "checkpoints") == before
    finally:
        for path in (folder / "out" / "fault", folder / "out" / "fault" / "checkpoints"):
            path.chmod(0o755)
        shutil.rmtree(folder)


def test_too_little_free_space_for_the_saves_stops_before_they_start(trained_run, tmp_path, monkeypatch) -> None:
    from toolkit.config import load_config

    job, run_folder = copy_trained(trained_run, tmp_path)
    job["config"]["process"][0]["train"]["steps"] = 10
    config = load_config(write_yaml(tmp_path / "job.yaml", job)).config.process[0]
    save_bytes = sum(p.stat().st_size for p in (run_folder / "checkpoints" / SAVES[1]).iterdir())
    user_bytes = (run_folder / "fault_000000004.safetensors").stat().st_size
    # saves at 6 and 8 and the final one at 10; with 2 on disk and 3 kept, 4 share the disk at the peak: 2 more
    needed = 2 * (save_bytes + user_bytes) + user_bytes
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=needed - 1))
    with pytest.raises(FileSystemError) as raised:
        check_room(run_folder, "fault", config, 4, RunGuard(run_folder).how_to_go_on())
    message = str(raised.value)
    assert message.startswith(f"{run_folder}: {(needed - 1) / 1024**2:.1f} MiB free on its disk, but the saves")
    assert f"need about {needed / 1024**2:.1f} MiB" in message and "lower save.max_step_saves_to_keep" in message
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=needed))
    check_room(run_folder, "fault", config, 4, "")  # exactly enough: no error


TINY_LORA_PARAMS = 6272
"""`training_job`'s rank-4 LoRA on the tiny model: 4 * (in + out) over its 56 default targets (the memory plan's
count, which tests/memory/test_memory_plan.py checks against the attached network's)."""


class _Loading(Exception):
    """Raised in place of the model's load: the run got past every check before loading."""


def test_a_new_run_without_room_for_its_saves_stops_before_the_model_loads(tiny_ready, tmp_path, monkeypatch, capsys):
    import json

    from extensions_built_in.diffusion_models.ltx2.LTX2Model import LTX2Model
    from tests.faults.conftest import run_here

    loads = []

    def load_model(self, defer_text_encoder: bool = False):
        loads.append(self.config.name_or_path)
        raise _Loading

    monkeypatch.setattr(LTX2Model, "load_model", load_model)
    args = [str(write_yaml(tmp_path / "job.yaml", training_job(tmp_path)))]
    run_folder = tmp_path / "out" / "fault"
    # float32 saves: the LoRA file and the resume folder's copy (4 bytes a parameter each) and AdamW's state (8);
    # the step save at 2 and the final one at 4 share the disk, plus the final LoRA file
    save_bytes = 16 * TINY_LORA_PARAMS
    needed = 2 * save_bytes + 4 * TINY_LORA_PARAMS
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=needed - 1))
    outcome = run_here(args, capsys)
    assert (outcome.returncode, loads) == (1, [])
    assert outcome.stderr.strip().splitlines()[-1] == (
        f"error: {run_folder}: {(needed - 1) / 1024**2:.1f} MiB free on its disk, but the saves this run will write "
        f"need about {needed / 1024**2:.1f} MiB (save.max_step_saves_to_keep + 1 step saves of "
        f"{save_bytes / 1024**2:.1f} MiB at the peak, and the final LoRA); free some space, lower "
        "save.max_step_saves_to_keep, or choose another training_folder. Nothing was saved yet: run the same config again."
    )
    status = json.loads((run_folder / "status.json").read_text())
    assert (status["state"], status["step"]) == ("failed", 0) and "free on its disk" in status["error"]
    assert not (run_folder / "checkpoints").exists() and not (run_folder / "run.lock").exists()

    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=needed))  # exactly enough
    with pytest.raises(_Loading):
        run_here(args, capsys)
    assert loads == ["tiny-ltx2"]


def test_a_dry_run_says_what_the_saves_need_against_the_free_space(trained_run, tiny_ready, tmp_path, monkeypatch, capsys):
    from toolkit.memory_management.plan_format import format_size

    usage = shutil.disk_usage(tmp_path)
    new_job = write_yaml(tmp_path / "new.yaml", training_job(tmp_path / "new"))
    needed = 2 * 16 * TINY_LORA_PARAMS + 4 * TINY_LORA_PARAMS  # as a new run sizes it before loading (test above)
    for free, verdict in ((needed, "ok"), (needed - 2048, f"SHORT by {format_size(2048)}")):
        monkeypatch.setattr(shutil, "disk_usage", lambda path, free=free: usage._replace(free=free))
        assert run.main([str(new_job), "--dry-run"]) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] == (
            f"Disk for the saves (a new run): about {format_size(needed)} at the peak (step saves of "
            f"{format_size(16 * TINY_LORA_PARAMS)}, save.max_step_saves_to_keep + 1 at once, and the final LoRA); "
            f"{format_size(free)} free on the disk of {tmp_path / 'new' / 'out' / 'fault'}: {verdict}."
        )
    assert not (tmp_path / "new" / "out").exists()  # a dry run writes nothing

    job, run_folder = copy_trained(trained_run, tmp_path)  # saves at 2 and 4 on disk
    job["config"]["process"][0]["train"]["steps"] = 10
    save_bytes = sum(p.stat().st_size for p in (run_folder / "checkpoints" / SAVES[1]).iterdir())
    user_bytes = (run_folder / "fault_000000004.safetensors").stat().st_size
    needed = 2 * (save_bytes + user_bytes) + user_bytes  # as the resumed run checks it (the test above)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=needed))
    assert run.main([str(write_yaml(tmp_path / "job.yaml", job)), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(
        f"Disk for the saves (resumed at step 4, its newest save): about {format_size(needed)} at the peak (step "
        f"saves of {format_size(save_bytes + user_bytes)},"
    )


def test_after_attaching_the_disk_is_checked_only_for_a_lora_the_plan_did_not_size(tmp_path, monkeypatch, caplog):
    import logging

    from extensions_built_in.sd_trainer.save_space import check_after_attach
    from toolkit.config import load_config

    config = load_config(write_yaml(tmp_path / "job.yaml", training_job(tmp_path))).config.process[0]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=0))
    logger, run_folder = logging.getLogger("save_space_test"), tmp_path / "out" / "fault"
    with caplog.at_level(logging.INFO, logger=logger.name):
        check_after_attach(run_folder, "fault", config, "", TINY_LORA_PARAMS, TINY_LORA_PARAMS, logger)  # checked
        for checked_for in (None, TINY_LORA_PARAMS - 1):  # the plan could not size it, or sized another LoRA
            with pytest.raises(FileSystemError, match=r"0\.0 MiB free on its disk"):
                check_after_attach(run_folder, "fault", config, "nothing was saved yet", TINY_LORA_PARAMS, checked_for, logger)
    assert caplog.messages == [
        f"The memory plan sized the LoRA at {TINY_LORA_PARAMS - 1} parameters, the attached one has {TINY_LORA_PARAMS}: "
        "free space is checked again"
    ]


def _live_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def test_a_second_run_into_a_held_folder_stops_naming_the_holder(trained_run, tmp_path, capsys) -> None:
    job, run_folder = copy_trained(trained_run, tmp_path)
    job["config"]["process"][0]["train"]["steps"] = 6
    holder = _live_process()
    try:
        (run_folder / LOCK_FILE).write_text(
            f'{{"pid": {holder.pid}, "host": "{socket.gethostname()}", "started_at": "2030-01-01T00:00:00+00:00", '
            '"argv": ["run.py", "first.yaml"]}'
        )
        before = _files(run_folder)
        assert run.main([str(write_yaml(tmp_path / "job.yaml", job))]) == 1
        error = capsys.readouterr().err
        assert error.strip().splitlines()[-1] == (
            f"error: {run_folder} is in use by another run (pid {holder.pid} on {socket.gethostname()}, started "
            "2030-01-01T00:00:00+00:00 (run.py first.yaml)); wait for it to end, or give this run another config.name "
            f"or training_folder. If that run is gone (another machine that crashed), delete {run_folder / LOCK_FILE}."
        )
        assert _files(run_folder) == before  # the other run's files and its lock untouched
        assert run.main([str(tmp_path / "job.yaml"), "--dry-run"]) == 0  # a dry run writes nothing: it takes no lock
        assert _files(run_folder) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_notice(tmp_path) -> None:
    gone = _live_process()
    gone.kill()
    gone.wait()
    (tmp_path / LOCK_FILE).write_text(
        f'{{"pid": {gone.pid}, "host": "{socket.gethostname()}", "started_at": "2020-01-01T00:00:00+00:00", "argv": []}}'
    )
    with RunLock(tmp_path) as lock:
        assert lock.notice == (
            f"took over {tmp_path / LOCK_FILE}: the run that held it (pid {gone.pid} on {socket.gethostname()}, "
            "started 2020-01-01T00:00:00+00:00 (no command line)) is no longer running"
        )
        held = read_lock(tmp_path)
        assert (held.pid, held.host, held.argv) == (os.getpid(), socket.gethostname(), sys.argv)
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_from_another_host_is_never_taken_over(tmp_path) -> None:
    (tmp_path / LOCK_FILE).write_text('{"pid": 1, "host": "render-07", "started_at": "2020-01-01T00:00:00+00:00", "argv": []}')
    with pytest.raises(RunFolderInUse) as raised:
        RunLock(tmp_path).acquire()
    assert "is in use by another run (pid 1 on render-07" in str(raised.value)
    assert run.exit_code(raised.value) == 1
    assert read_lock(tmp_path).host == "render-07"
