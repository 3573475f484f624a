"""What the web UI costs a run, and how fast a big run page renders in a browser.

    python benchmarks/bench_ui.py [--steps 40] [--repeats 2] [--skip-train] [--skip-page] [--write-doc]

1. Training with the UI open: the tiny example (`--steps` steps, no sampling, trace off) runs from
   the command line `--repeats` times without the UI and `--repeats` times with `run.py ui` serving
   its folder and headless chromium on its run page (polling every 2 s), alternating, so a busy
   moment of a shared machine does not land on one side only. Printed: the median training step
   time (05_Performance/Step_Time_s from metrics.jsonl) and the process's wall time of each, and
   their ratios with/without.
2. A big run page: a run folder with 10,000 logged steps (loss, lr, grad norm) and 200 samples
   (100 sampled steps x 2 prompts, copies of one real sample) is opened in chromium `--repeats` + 1
   times, alternating with the page of a small run (10 logged steps, no samples) of the same server;
   printed: milliseconds from navigation to the page loaded and to the charts drawn, for the
   first opening (the server parses metrics.jsonl) and the median of the others (it keeps the parse),
   and each as a ratio to the small run's page opened the same way.

Needs Debian's chromium (apt-get install -y chromium chromium-driver) and playwright. Not a test.
`--write-doc` puts both tables into docs/benchmarks.md (section `ui`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_section import command_line, load_average, machine, markdown_table, report, write_section

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_tiny.yaml"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a small /dev/shm
]


def start_ui(folder: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "run.py", "ui", "--port", "0", "--training-folder", str(folder)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
    )
    first = process.stdout.readline()
    if "UI on http://" not in first:
        raise SystemExit(f"run.py ui printed {first!r}")
    return process, first.split("UI on ", 1)[1].split()[0]


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))


def train_once(folder: Path, name: str, steps: int, browser=None) -> tuple[float, float]:
    """(median step seconds, process wall seconds) of one tiny run; with `browser`, the UI watches it."""
    args = [
        f"--set=config.name={name}", f"--set=config.process.0.training_folder={folder}",
        f"--set=config.process.0.train.steps={steps}", "--set=config.process.0.train.disable_sampling=true",
        "--set=config.process.0.logging.log_every=1", "--set=config.process.0.model.verbose=false",
        f"--set=config.process.0.save.save_every={steps}",
    ]
    server = page = None
    if browser is not None:
        server, url = start_ui(folder)
    started = time.perf_counter()
    run = subprocess.Popen([sys.executable, "run.py", str(TINY_EXAMPLE), *args], cwd=REPO_ROOT, env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if browser is not None:
            while not (folder / name).is_dir() and run.poll() is None:
                time.sleep(0.1)
            page = browser.new_page()
            page.goto(f"{url}runs/0/{name}")
        code = run.wait()
        wall = time.perf_counter() - started
    finally:
        if page is not None:
            page.close()
        if server is not None:
            stop(server)
    if code != 0:
        raise SystemExit(f"the tiny run exited {code}")
    step_times = []
    for line in (folder / name / "metrics.jsonl").read_text().splitlines():
        value = json.loads(line)["metrics"].get("05_Performance/Step_Time_s")
        if value is not None:
            step_times.append(value)
    return statistics.median(step_times[3:] or step_times), wall


def bench_training(browser, steps: int, repeats: int) -> str:
    """The tiny example without and with the run page open, alternating; a table of the medians and ratios."""
    without, with_ui = [], []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for repeat in range(repeats):
            without.append(train_once(folder, f"bare_{repeat}", steps))
            with_ui.append(train_once(folder, f"watched_{repeat}", steps, browser))
    step_without = statistics.median(t for t, _ in without)
    step_with = statistics.median(t for t, _ in with_ui)
    wall_without = min(w for _, w in without)
    wall_with = min(w for _, w in with_ui)
    return markdown_table(
        ("the tiny example", "without the UI", "run page open", "ratio"),
        [
            ("training step (median)", f"{step_without * 1000:.1f} ms", f"{step_with * 1000:.1f} ms", f"{step_with / step_without:.3f}x"),
            (f"whole run (fastest of {repeats})", f"{wall_without:.1f} s", f"{wall_with:.1f} s", f"{wall_with / wall_without:.3f}x"),
        ],
    )


def write_run(folder: Path, name: str, steps: int, sample: Path | None) -> Path:
    """A finished run folder with `steps` logged steps and, with `sample`, 2 samples every 100 steps, written
    directly."""
    run = folder / name
    (run / "samples").mkdir(parents=True)
    with (run / "metrics.jsonl").open("w") as handle:
        for step in range(steps):
            metrics = {"01_Training/Loss": 1.0 / (1 + step / 500) + 0.05 * ((step * 7919) % 13) / 13,
                       "04_Learning_Rate/Learning_Rate": 1e-4, "11_Gradient_Stats/Total_Gradient_Norm": 0.5 + (step % 17) / 17}
            handle.write(json.dumps({"step": step, "time": 1_700_000_000 + step * 0.5, "metrics": metrics}) + "\n")
    for step in range(100, steps + 1, 100) if sample is not None else ():
        for prompt in (0, 1):
            shutil.copyfile(sample, run / "samples" / f"{step:09d}_{prompt}.mp4")
    (run / "status.json").write_text(json.dumps({
        "state": "finished", "step": steps, "steps": steps, "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T01:23:20+00:00", "pid": 1, "exit_code": 0, "error": None}))
    (run / "job.yaml").write_text(
        f"job: extension\nconfig:\n  name: {name}\n  process:\n    - type: sd_trainer\n      train: {{steps: {steps}}}\n"
        "      sample: {prompts: [a red square, a blue circle]}\n")
    return run


def open_page(browser, url: str, steps: int, samples: int) -> dict[str, float]:
    """Open a run page in a new tab; milliseconds from navigation to loaded, to the charts drawn, and fetching the
    metrics (checked: the chart holds `steps` points and the gallery `samples` samples)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(url)
        while not page.evaluate("document.getElementById('charts').dataset.ready === '1'"):
            time.sleep(0.01)  # polled from here: the page's CSP forbids wait_for_function's eval
        timing = page.evaluate(
            "() => ({loaded: performance.getEntriesByType('navigation')[0].loadEventEnd, drawn: Number(document.getElementById('charts').dataset.drawnAt),"
            " metrics: performance.getEntriesByType('resource').filter(e => e.name.includes('/metrics'))[0].duration,"
            " points: window.ltx2Charts.loss.data[0].length, samples: document.querySelectorAll('#gallery video, #gallery a.sample-link').length})"
        )
    finally:
        page.close()
    if timing["points"] != steps or timing["samples"] < samples:
        raise SystemExit(f"{url}: {timing['points']} points and {timing['samples']} samples, not {steps} and {samples}")
    return {key: timing[key] for key in ("loaded", "drawn", "metrics")}


def bench_page(browser, repeats: int) -> str:
    """The big run page and the small one, alternating, `repeats` + 1 times each; a table of the medians and ratios."""
    sample = REPO_ROOT / "data" / "demo_clips" / "demo_00.mp4"
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        write_run(folder, "big_run", 10_000, sample)
        write_run(folder, "small_run", 10, None)
        server, url = start_ui(folder)
        big, small = [], []
        try:
            for _ in range(repeats + 1):
                big.append(open_page(browser, f"{url}runs/0/big_run", 10_000, 200))
                small.append(open_page(browser, f"{url}runs/0/small_run", 10, 0))
        finally:
            stop(server)
    rows = []
    for label, index in (("first opening (metrics parsed)", slice(0, 1)), ("opened again (parse kept)", slice(1, None))):
        if not big[index]:
            continue
        for key, what in (("loaded", "page loaded"), ("drawn", "charts drawn"), ("metrics", "metrics fetched")):
            big_ms = statistics.median(timing[key] for timing in big[index])
            small_ms = statistics.median(timing[key] for timing in small[index])
            rows.append((f"{label}: {what}", f"{big_ms:.0f} ms", f"{small_ms:.0f} ms", f"{big_ms / small_ms:.2f}x"))
    return markdown_table(("run page, ms after navigation", "10,000 steps, 200 samples", "10 steps, no samples", "ratio"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-page", action="store_true")
    parser.add_argument("--write-doc", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = load_average()
    tables = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            if not args.skip_page:
                tables.append(bench_page(browser, args.repeats))
            if not args.skip_train:
                tables.append(bench_training(browser, args.steps, args.repeats))
        finally:
            browser.close()
    print("\n\n".join(tables) + f"\n{machine(load_before)}")
    if args.write_doc:
        what = (
            "Headless chromium (Debian's, driven by playwright). The run page of a run folder with 10,000 logged "
            f"steps and 200 samples is opened {args.repeats + 1} times, alternating with the page of a 10-step run "
            "without samples on the same server: the ratio is big page / small page, milliseconds from navigation "
            "to the page loaded, to the charts drawn, and fetching the metrics (the first opening parses "
            f"metrics.jsonl, later ones reuse the parse). Then the tiny example ({args.steps} steps, no sampling, "
            f"trace off) trains {args.repeats} times from the command line without the UI and {args.repeats} times "
            "with `run.py ui` serving its folder and chromium on its run page (polling every 2 s), alternating: the "
            "ratio is with the page open / without (median step time from metrics.jsonl; the whole process's "
            "wall time). "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}."
        )
        body = report("Web UI", command_line(__file__), what, tables, load_before)
        print(f"wrote {write_section('ui', body)}")

if __name__ == "__main__":
    main()
