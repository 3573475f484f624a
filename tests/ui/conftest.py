"""The UI's test fixtures: one server (`run.py ui` in a child process), one command-line run, one browser.

The server serves a fresh training folder and a dataset folder (copies of one demo clip). The
command-line run (`cli_run`) is the tiny example with the settings the browser tests put in the
form, so it is both the finished run the read-only tests look at and the reference LoRA a run
started, stopped and resumed from the UI must end with. It starts in the background when first
asked for and is waited on by whoever needs it finished.

Browser tests drive Debian's chromium through playwright (`executable_path`); playwright's own
browser download is never used. Without chromium they skip, naming the apt command; with CI=true a
missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_tiny.yaml"
DEMO_CLIP = REPO_ROOT / "data" / "demo_clips" / "demo_00.mp4"
CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get install -y chromium chromium-driver"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a small /dev/shm
    "--enable-blink-features=AudioVideoTracks",  # HTMLMediaElement.audioTracks, to see a sample's audio track
]
PROMPT = "a red square moving left to right, with a 440 Hz tone"
STEPS = 10
# The form's values for the job the browser creates; CLI_SETTINGS say the same on the command line.
FORM = {
    "steps": str(STEPS), "lr": "1e-3", "rank": "8", "alpha": "8", "resolution": "32", "num_frames": "9",
    "prompts": PROMPT, "sample_every": str(STEPS), "save_every": "100", "log_every": "1",
}
CLI_SETTINGS = {
    "train.steps": STEPS, "train.lr": 1e-3, "network.linear": 8, "network.linear_alpha": 8, "datasets.0.resolution": "[32]",
    "sample.width": 32, "sample.height": 32, "datasets.0.num_frames": 9, "sample.num_frames": 9,
    "sample.prompts": f'["{PROMPT}"]', "sample.sample_every": STEPS, "save.save_every": 100, "logging.log_every": 1,
    "model.verbose": "true", "device": "cpu",
}


@dataclass
class UIServer:
    url: str
    process: subprocess.Popen
    runs: Path  # the training folder it serves
    clips: Path  # the dataset the jobs train on
    datasets: Path  # the dataset folder it serves (holds `clips` and an `edit` copy for caption edits)
    screenshots: Path


def child_env() -> dict[str, str]:
    """This environment (the session's LTX2_TRACE_CACHE included), one BLAS thread, the repo importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def ui_folders(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Fresh folders: runs/, datasets/clips (what jobs train on), datasets/edit (what caption tests change)."""
    root = tmp_path_factory.mktemp("ui")
    folders = {"runs": root / "runs", "datasets": root / "datasets", "screenshots": root / "screenshots"}
    for name in ("clips", "edit"):
        target = folders["datasets"] / name
        target.mkdir(parents=True)
        shutil.copy2(DEMO_CLIP, target / DEMO_CLIP.name)
        shutil.copy2(DEMO_CLIP.with_suffix(".txt"), target / "demo_00.txt")
    folders["runs"].mkdir()
    folders["screenshots"].mkdir()
    return folders


@pytest.fixture(scope="session")
def cli_run_process(ui_folders) -> subprocess.Popen:
    """`python run.py <tiny example> --set ...` into runs/cli_run, started in the background."""
    process_settings = {**CLI_SETTINGS, "training_folder": str(ui_folders["runs"]), "datasets.0.folder_path": str(ui_folders["datasets"] / "clips")}
    args = [f"--set=config.process.0.{key}={value}" for key, value in process_settings.items()]
    log = open(ui_folders["runs"].parent / "cli_run.log", "w")
    process = subprocess.Popen(
        [sys.executable, "run.py", str(TINY_EXAMPLE), "--set=config.name=cli_run", *args],
        cwd=REPO_ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def cli_run(cli_run_process, ui_folders) -> Path:
    """The finished command-line run's folder."""
    code = cli_run_process.wait(timeout=1800)
    log = (ui_folders["runs"].parent / "cli_run.log").read_text()
    assert code == 0, log[-3000:]
    return ui_folders["runs"] / "cli_run"


@pytest.fixture(scope="session")
def ui_server(ui_folders, cli_run_process) -> UIServer:
    """`python run.py ui --port 0` over the fresh folders; the URL is the one it prints."""
    command = [
        sys.executable, "run.py", "ui", "--port", "0", "--training-folder", str(ui_folders["runs"]),
        "--dataset-folder", str(ui_folders["datasets"]),
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = process.stdout.readline()
    if "UI on http://" not in first:
        process.kill()
        pytest.fail(f"run.py ui printed {first!r} then: {process.stdout.read()[-2000:]}")
    url = first.split("UI on ", 1)[1].split()[0]
    yield UIServer(url, process, ui_folders["runs"], ui_folders["datasets"] / "clips", ui_folders["datasets"], ui_folders["screenshots"])
    _stop_jobs_left_running(url)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop_jobs_left_running(url: str) -> None:
    """A failed test may leave a job running: its process group goes down with the server."""
    import json
    import urllib.request

    try:
        runs = json.load(urllib.request.urlopen(url + "api/runs", timeout=10))["runs"]
    except OSError:
        return
    for run in runs:
        if run["pid"] and run["started_by"] == "ui":
            try:
                os.killpg(run["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, through playwright; skipped (or failed under CI=true) when missing."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install -r requirements-dev.txt)"
    if missing is None and not Path(CHROMIUM).exists():
        missing = f"no chromium at {CHROMIUM}: {INSTALL}"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need a browser under CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, ui_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.script_errors = errors
    yield opened
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
