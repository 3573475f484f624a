"""The queue: start queued jobs one at a time per device, notice when they end, stop, resume and delete runs.

`tick()` runs every second in the server (and after every change): it reaps the run.py processes
this UI started (their exit code is recorded), then starts each queued launch whose device is
free: no running launch and no run started from the command line on it (unless the launch was
asked to run alongside). A job is `run.py CONFIG` in a process group of its own, so the UI can be
closed and opened again while it trains; launches an earlier UI started are followed by pid.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

from toolkit.config import load_config
from toolkit.errors import ConfigError, ToolkitError
from toolkit.logging.run_status import RunStatusError, read_run_status

from .folders import Folders
from .jobs import Launch, Launches, device_key
from .processes import ProcessGone, created_at, interrupt, interrupt_group, start_run
from .run_folder import CONSOLE_LOG, config_file, read_config, read_lock
from .run_state import ACTIVE, command_line_run_running, launch_alive, run_folders, summarize


class ActionRefused(ToolkitError):
    """A control the run's state does not allow (answered 409 with the reason)."""


class JobQueue:
    def __init__(self, folders: Folders, launches: Launches) -> None:
        self.folders = folders
        self.launches = launches
        self.processes: dict[int, subprocess.Popen] = {}  # launches this UI started, to reap and read exit codes
        self._lock = threading.RLock()

    # -- the loop ------------------------------------------------------------------------------
    def tick(self) -> None:
        with self._lock:
            self._reap()
            self._start_due()

    def _reap(self) -> None:
        for launch in self.launches.in_state("running"):
            process = self.processes.get(launch.id)
            if process is not None:
                code = process.poll()
                if code is None:
                    continue
                del self.processes[launch.id]
                self.launches.mark_ended(launch.id, code)
            elif not launch_alive(launch):
                self.launches.mark_ended(launch.id, None)  # started by an earlier UI: status.json has the rest

    def _start_due(self) -> None:
        queued = self.launches.in_state("queued")
        if not queued:
            return
        busy = {launch.device for launch in self.launches.in_state("running")} | self._devices_of_command_line_runs()
        for launch in queued:
            if launch.alongside or launch.device not in busy:
                self._start(launch)
                busy.add(launch.device)

    def _devices_of_command_line_runs(self) -> set[str]:
        """The devices of running runs the UI did not launch (it asks every tick while a job waits, so it reads
        only what tells a run is running, and the config of those that are)."""
        devices = set()
        for _, folder in run_folders(self.folders):
            if self.launches.latest(folder) is None and command_line_run_running(folder):
                config = read_config(folder)
                devices.add(device_key(config.device if config else None))
        return devices

    def _start(self, launch: Launch) -> None:
        process = start_run(launch.config_path, launch.extra_args, self.folders.workdir, launch.run_folder / CONSOLE_LOG)
        self.processes[launch.id] = process
        # A process that already exited has no create time: the reap above records its exit code next tick.
        self.launches.mark_started(launch.id, process.pid, created_at(process.pid) or 0.0)

    # -- controls ------------------------------------------------------------------------------
    def queue_new(self, run_folder: Path, job_file: Path, device: str, alongside: bool) -> int:
        launch_id = self.launches.queue(run_folder, job_file, device, alongside=alongside)
        self.tick()
        return launch_id

    def start_now(self, run_folder: Path) -> None:
        """A queued job starts without waiting for its device."""
        with self._lock:
            launch = self.launches.latest(run_folder)
            if launch is None or launch.state != "queued":
                raise ActionRefused(f"{run_folder.name} is not queued")
            self._start(launch)

    def stop(self, index: int, run_folder: Path) -> str:
        """Queued: taken out of the queue. Running: SIGINT, the trainer's Ctrl-C (finish the step, save, stop)."""
        with self._lock:
            launch = self.launches.latest(run_folder)
            if launch is not None and launch.state == "queued":
                self.launches.cancel(launch.id)
                return "taken out of the queue"
            if launch is not None and launch.state == "running" and launch_alive(launch):
                interrupt_group(launch.pid, launch.pid_created)
                self.launches.mark_stop_requested(launch.id)
                return "stopping: the run saves a checkpoint after the current step"
        return self._stop_command_line_run(index, run_folder)

    def _stop_command_line_run(self, index: int, run_folder: Path) -> str:
        try:
            status = read_run_status(run_folder)
        except RunStatusError:
            status = None
        lock = read_lock(run_folder)
        candidates = [(status.pid, status.started_at)] if status is not None and status.state == "running" else []
        candidates += [(lock.pid, lock.started_at)] if lock is not None else []
        for pid, started_at in candidates:
            try:
                interrupt(pid, started_at)
            except ProcessGone:
                continue
            return "stopping: the run saves a checkpoint after the current step"
        raise ActionRefused(f"{run_folder.name} is not running (state: {summarize(index, run_folder, self.launches).state})")

    def resume(self, index: int, run_folder: Path) -> None:
        """Run the same config again: the trainer resumes from its newest checkpoint."""
        with self._lock:
            state = summarize(index, run_folder, self.launches).state
            if state in ACTIVE:
                raise ActionRefused(f"{run_folder.name} is {state}")
            if state == "finished":
                raise ActionRefused(f"{run_folder.name} is finished; to train on, raise train.steps in a new job")
            config, extra = self._resume_config(run_folder)
            device = (read_config(run_folder).device if read_config(run_folder) else None) or "cpu"
            self.launches.queue(run_folder, config, device, extra)
        self.tick()

    def _resume_config(self, run_folder: Path) -> tuple[Path, list[str]]:
        """The UI's job file, else the config saved with the newest checkpoint, pinned to this run folder."""
        path = config_file(run_folder)
        if path is None:
            raise ActionRefused(f"{run_folder.name} has no config to run again (no job file, no checkpoint)")
        extra = [] if path.parent == run_folder else [f"--set=config.process.0.training_folder={run_folder.parent}"]
        try:
            job = load_config(path, overrides=[argument.removeprefix("--set=") for argument in extra])
        except ConfigError as error:
            raise ActionRefused(f"{path} no longer loads: {error}") from error
        target = self.folders.absolute(job.config.process[0].training_folder) / job.config.name
        if target != run_folder:
            raise ActionRefused(f"{path} would run into {target}, not {run_folder}")
        return path, extra

    def delete(self, index: int, run_folder: Path) -> None:
        """Remove a run folder that is not active; never a link, never anything outside the training folders."""
        with self._lock:
            state = summarize(index, run_folder, self.launches).state
            if state in ACTIVE:
                raise ActionRefused(f"{run_folder.name} is {state}: stop it first")
            if run_folder.is_symlink() or self.folders.locate_run(run_folder) != (index, run_folder.name):
                raise ActionRefused(f"{run_folder} is not a run folder directly inside a training folder")
            shutil.rmtree(run_folder)
            self.launches.forget_run(run_folder)

    def requeue_unstarted(self) -> int:
        """At start: queue again every job.yaml that never ran and has no launch (its database was deleted)."""
        found = []
        for base in self.folders.training:
            for job_file in sorted(base.glob("*/job.*")):
                folder = job_file.parent
                if job_file.suffix in (".yaml", ".json") and not (folder / "status.json").exists() and not (folder / CONSOLE_LOG).exists():
                    config = read_config(folder)
                    found.append((job_file, (config.device if config else None) or "cpu"))
        return self.launches.requeue_unstarted(found)
