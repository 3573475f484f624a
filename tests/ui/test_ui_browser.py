"""What a person does in the UI, in a real browser (Debian's chromium): make a job with the form, watch it,
stop it, resume it, look at its chart, samples and trace; a bad value is shown next to its key.

One job is really started, stopped and resumed (`ui_job`); its LoRA must equal the command-line
run's (same config and seed). Screenshots of each page go to the session's tmp folder (printed).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.ui.conftest import FORM, PROMPT, STEPS, wait_for


def api(server, path: str):
    return json.load(urllib.request.urlopen(server.url + path.lstrip("/"), timeout=30))


def wait_in_page(page, expression: str, timeout: float, what: str):
    """Poll a JavaScript expression from here: the pages' Content-Security-Policy forbids the eval that
    playwright's own wait_for_function compiles its predicate with."""
    return wait_for(lambda: page.evaluate(expression), timeout, what)


def fill_form(page, server, name: str, values: dict[str, str]) -> None:
    page.goto(server.url + "new")
    page.fill("#f-name", name)
    page.select_option("#f-training_folder", str(server.runs))
    page.fill("#f-dataset", str(server.clips))
    for field, value in values.items():
        page.fill(f"#f-{field}", value)
    page.check("#f-verbose")


def shot(page, server, name: str) -> Path:
    path = server.screenshots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def state_shown(page) -> str:
    return page.inner_text("#summary .state")


def test_an_invalid_value_is_shown_next_to_its_key_and_starts_nothing(page, ui_server):
    fill_form(page, ui_server, "bad_job", {**FORM, "steps": "0", "lr": "fast"})
    page.click("button[value=check]")
    steps = page.locator(".field[data-key='config.process[0].train.steps'] .problem")
    lr = page.locator(".field[data-key='config.process[0].train.lr'] .problem")
    assert steps.inner_text() == "0 is out of range (must be >= 1)"
    assert "'fast' is not a number" in lr.inner_text()
    assert page.locator("#queue").count() == 0  # nothing to queue until the checks pass
    shot(page, ui_server, "new_job_invalid")
    assert not (ui_server.runs / "bad_job").exists()
    assert "bad_job" not in [run["name"] for run in api(ui_server, "/api/runs")["runs"]]


@pytest.fixture(scope="module")
def ui_job(browser, ui_server) -> dict:
    """The job made with the form: checked (dry-run plan shown), queued, stopped once it trains, resumed to the end.

    To stop it mid-run on any machine, the test holds the job still (SIGSTOP) once its first step is
    logged, presses Stop (the UI sends SIGINT to the job's process group), then lets it go on
    (SIGCONT): the trainer finishes the step, saves a checkpoint and exits, as after Ctrl-C.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.set_default_navigation_timeout(600_000)  # the first check imports the model code into the server
    seen: dict = {"errors": []}
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    folder = ui_server.runs / "ui_job"
    try:
        fill_form(page, ui_server, "ui_job", FORM)
        page.click("button[value=check]")
        page.wait_for_selector("#queue", timeout=600_000)
        seen["plan"] = page.inner_text(".plan-text")
        shot(page, ui_server, "new_job_checked")
        page.click("#queue")
        page.wait_for_url("**/runs/0/ui_job*")

        status = _held_after_its_first_step(folder)
        try:
            page.reload()
            page.click("#summary button.stop")
            page.wait_for_selector("#summary .state.stopping", timeout=60_000)
        finally:
            os.kill(status["pid"], signal.SIGCONT)
        page.wait_for_selector("#summary .state.stopped", timeout=300_000)
        seen["stopped_status"] = json.loads((folder / "status.json").read_text())
        seen["checkpoints_after_stop"] = sorted(path.name for path in (folder / "checkpoints").iterdir())
        seen["final_lora_after_stop"] = (folder / "ui_job.safetensors").exists()
        shot(page, ui_server, "run_stopped")

        page.click("#summary button:has-text('Resume')")
        page.wait_for_selector("#summary .state.finished", timeout=600_000)
        page.goto(ui_server.url + "runs/0/ui_job")
        wait_in_page(page, "document.getElementById('charts').dataset.ready === '1'", 60, "the charts")
        seen["chart"] = page.evaluate(_CHART_PROBE)
        seen["video"] = _sample_video(page)
        seen["timeline_spans"] = page.locator("svg.timeline rect").count()
        seen["plan_rows"] = page.locator("table.plan").first.locator("tbody tr").count()
        # status.json says finished as the run's last act; the process then still closes its log and lock and
        # exits, and the UI records its exit code when it sees it gone.
        seen["summary"] = wait_for(
            lambda: (summary := api(ui_server, "/api/runs/0/ui_job"))["launches"][-1]["exit_code"] is not None and summary,
            120, "the resumed job's exit code",
        )
        shot(page, ui_server, "run_finished")
    finally:
        context.close()
    return seen


def _held_after_its_first_step(folder: Path) -> dict:
    """The job's status.json, with the job held still (SIGSTOP) just after its first step: it runs in slices of a
    few milliseconds, held between them, until trace.jsonl (flushed record by record) holds the end of a
    `hook_train_loop`. Watching metrics.jsonl for the loss instead raced the run's end: metrics reach the file up
    to 0.5 s late, and this job's ten small steps take less on an idle machine."""
    status_file = folder / "status.json"
    status = wait_for(lambda: status_file.is_file() and json.loads(status_file.read_text()), 600, "the job's status.json")
    trace, deadline = folder / "trace.jsonl", time.monotonic() + 600
    while True:
        try:
            os.kill(status["pid"], signal.SIGSTOP)
        except ProcessLookupError:
            pytest.fail(f"the job ended before its first step ended: {folder / 'console.log'} says why")
        if trace.is_file() and '"span_end", "name": "hook_train_loop"' in trace.read_text():
            return status
        os.kill(status["pid"], signal.SIGCONT)
        if time.monotonic() > deadline:
            pytest.fail("the job's first step never ended in its trace within 600 s")
        time.sleep(0.005)


# What the loss chart drew: its points, and how many pixels of its canvas are painted.
_CHART_PROBE = """() => {
  const chart = window.ltx2Charts.loss;
  const canvas = chart.ctx.canvas;
  const pixels = chart.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return {steps: chart.data[0], loss: chart.data[1], smoothed: chart.data[2], painted: painted};
}"""


def _sample_video(page) -> dict:
    """The newest step's sample in the side-by-side view, loaded: ready state, duration, audio tracks."""
    wait_in_page(page, "Array.from(document.querySelectorAll('#gallery video[preload=metadata]')).every(v => v.readyState >= 2)", 60, "the samples")
    video = "#gallery .side-by-side figure:last-of-type video"
    return page.evaluate(
        f"""() => {{ const v = document.querySelector('{video}');
        return {{src: v.currentSrc, ready: v.readyState, duration: v.duration, audio: v.audioTracks.length, width: v.videoWidth}}; }}"""
    )


def test_a_job_from_the_form_shows_its_plan_and_stops_from_the_ui_with_a_checkpoint(ui_job):
    assert not ui_job["errors"]
    assert "Memory plan for" in ui_job["plan"] and "training" in ui_job["plan"]
    stopped = ui_job["stopped_status"]
    assert (stopped["state"], stopped["exit_code"]) == ("stopped", 130)
    assert 1 <= stopped["step"] < STEPS
    assert ui_job["checkpoints_after_stop"] == [f"step_{stopped['step']:09d}"]
    assert not ui_job["final_lora_after_stop"]


def test_the_resumed_job_finishes_with_a_drawn_loss_chart_a_sample_with_audio_and_its_trace(ui_job):
    run = ui_job["summary"]["run"]
    assert (run["state"], run["step"], run["steps"], run["started_by"]) == ("finished", STEPS, STEPS, "ui")
    launches = ui_job["summary"]["launches"]
    assert [launch["exit_code"] for launch in launches] == [130, 0]  # stopped, then resumed to the end
    chart = ui_job["chart"]
    assert chart["steps"] == list(range(STEPS))
    assert all(value > 0 for value in chart["loss"]) and len(chart["smoothed"]) == STEPS
    assert chart["painted"] > 1000  # lines and axes were drawn on the canvas
    video = ui_job["video"]
    assert video["src"].endswith(f"/runs/0/ui_job/files/samples/{STEPS:09d}_0.mp4")
    assert video["ready"] >= 2 and video["duration"] > 0 and video["audio"] >= 1 and video["width"] == 32
    assert ui_job["summary"]["prompts"] == [PROMPT]
    assert ui_job["timeline_spans"] > 10 and ui_job["plan_rows"] >= 4


def test_started_stopped_and_resumed_from_the_ui_gives_the_lora_of_the_command_line(ui_job, cli_run, ui_server):
    from_ui = load_file(ui_server.runs / "ui_job" / "ui_job.safetensors")
    from_cli = load_file(cli_run / "cli_run.safetensors")
    assert set(from_ui) == set(from_cli) and len(from_cli) > 0
    for key, tensor in from_cli.items():
        torch.testing.assert_close(from_ui[key], tensor)
    assert max(tensor.abs().max().item() for key, tensor in from_cli.items() if "lora_B" in key) > 1e-3  # it trained


def test_the_runs_list_shows_both_runs_and_the_dataset_page_edits_a_caption(page, ui_server, cli_run, ui_job):
    page.goto(ui_server.url)
    rows = {row.get_attribute("data-run"): row for row in page.locator("tr[data-run]").all()}
    assert rows["/runs/0/cli_run"].get_attribute("data-state") == "finished"
    assert "command line" in rows["/runs/0/cli_run"].inner_text()
    assert f"{STEPS} / {STEPS}" in rows["/runs/0/ui_job"].inner_text()
    shot(page, ui_server, "runs")

    page.goto(ui_server.url + "datasets/0?path=edit")
    clip = page.locator("article.clip").first
    verdict = clip.locator(".verdict").inner_text()
    assert verdict.startswith("used") and "9 frames at" in verdict and "with audio" in verdict
    clip.locator("textarea").fill("a green triangle, 550 Hz tone")
    clip.locator("button").click()
    wait_in_page(page, "document.querySelector('article.clip .saved').textContent.startsWith('saved')", 60, "the caption saved")
    assert (ui_server.datasets / "edit" / "demo_00.txt").read_text() == "a green triangle, 550 Hz tone\n"
    shot(page, ui_server, "dataset")
    print(f"\nUI screenshots: {ui_server.screenshots}")
