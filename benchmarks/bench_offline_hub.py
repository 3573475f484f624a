"""A run of a hub id on a machine without network, against the same run from a folder: start-up time and requests.

    python benchmarks/bench_offline_hub.py [--steps 2] [--repeats 3] [--check] [--write-doc]

The tiny LTX-2 is put into a temporary Hugging Face cache as the snapshot of a hub id, laid out as
huggingface_hub lays out what it downloads. Then, alternating, each a fresh `python run.py` of the tiny
example (`--steps` steps, sampling and TensorBoard off) with HF_HUB_OFFLINE unset and every connection
refused as a machine without network refuses it (a `sitecustomize` makes `socket.getaddrinfo` fail and
counts the attempts):
  folder         model.name_or_path: the tiny model's folder (the baseline)
  cached hub id  model.name_or_path: the hub id, every file the run reads in the cache
  incomplete     the hub id with the cache lacking its tokenizer/ folder: the run must stop with the command
                 that downloads what is missing, not wait on retries
  never cached   a hub id the cache has never held: the same
Each figure is the median wall time of --repeats processes, start to exit. `--check` exits 1 when a cached
hub id asks the hub anything or takes more than 1.5x the folder's run, or the last two do not stop with the
download command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks.doc_section import command_line, load_average, machine, markdown_table, report, write_section  # noqa: E402
from benchmarks.tiny_trainer_timing import tiny_config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "bench/tiny-ltx2"
NEVER_CACHED = "bench/never-downloaded"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHECK_RATIO = 1.5
NO_NETWORK = '''\
import atexit, os, socket
_attempts = []
def _refuse(host, *args, **kwargs):
    _attempts.append(str(host))
    raise socket.gaierror(socket.EAI_NONAME, "this benchmark's machine has no network")
socket.getaddrinfo = _refuse
atexit.register(lambda: open(os.environ["BENCH_ATTEMPTS_FILE"], "w").write("\\n".join(_attempts)))
'''


def cache_snapshot(cache: Path, model_dir: Path, repo_id: str = REPO_ID) -> Path:
    """`model_dir` as `repo_id`'s main-branch snapshot in the Hugging Face cache `cache`, laid out as
    huggingface_hub lays out what it downloads: each file stored once under blobs/, the snapshot's files
    symbolic links to them (tests/ltx2/test_ltx2_hub_snapshot.py builds its caches with this too)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "blobs").mkdir(parents=True)
    for number, source in enumerate(sorted(path for path in model_dir.rglob("*") if path.is_file())):
        blob = repo / "blobs" / f"{number:040x}"  # the hub names a blob by its hash; any unique name will do here
        shutil.copyfile(source, blob)
        link = snapshot / source.relative_to(model_dir)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def run_once(config: Path, folder: Path) -> dict:
    """`python run.py config` without network: wall seconds, exit code, hosts it tried, the end of its output."""
    attempts = folder / "attempts.txt"
    attempts.unlink(missing_ok=True)
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(
        PYTHONPATH=str(folder / "no_network"), HF_HOME=str(folder / "hf_home"), HF_HUB_CACHE=str(folder / "hf_cache"),
        BENCH_ATTEMPTS_FILE=str(attempts), OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "run.py", str(config)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    seconds = time.perf_counter() - started
    tried = [line for line in attempts.read_text().splitlines() if line] if attempts.exists() else []
    return {"seconds": seconds, "code": done.returncode, "tried": tried, "output": done.stdout + done.stderr}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 when the cached hub id misbehaves (see above)")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    load_before = load_average()
    from extensions_built_in.diffusion_models.ltx2.tiny.model import ensure_tiny_ltx2

    model_dir = ensure_tiny_ltx2()
    with tempfile.TemporaryDirectory(prefix="ltx2_offline_hub_") as temporary:
        folder = Path(temporary)
        (folder / "no_network").mkdir()
        (folder / "no_network" / "sitecustomize.py").write_text(NO_NETWORK)
        snapshot = cache_snapshot(folder / "hf_cache", model_dir)
        configs = {
            name: tiny_config(REPO_ROOT, folder, args.steps, {}, name=run_name, model_settings={"name_or_path": path})
            for name, run_name, path in (("folder", "folder_run", str(model_dir)), ("cached hub id", "hub_run", REPO_ID))
        }
        never_settings = {"name_or_path": NEVER_CACHED}
        never = tiny_config(REPO_ROOT, folder, args.steps, {}, name="never_run", model_settings=never_settings)
        runs: dict[str, list[dict]] = {name: [] for name in (*configs, "incomplete", "never cached")}
        for repeat in range(args.repeats):
            for name, config in configs.items():
                shutil.rmtree(folder / Path(config).stem, ignore_errors=True)
                runs[name].append(run_once(config, folder))
            shutil.move(snapshot / "tokenizer", folder / "tokenizer_aside")
            shutil.rmtree(folder / "hub_run", ignore_errors=True)
            runs["incomplete"].append(run_once(configs["cached hub id"], folder))
            shutil.move(folder / "tokenizer_aside", snapshot / "tokenizer")
            shutil.rmtree(folder / "never_run", ignore_errors=True)
            runs["never cached"].append(run_once(never, folder))
            timings = ", ".join(f"{name} {result[-1]['seconds']:.1f} s" for name, result in runs.items())
            print(f"  repeat {repeat + 1}/{args.repeats}: {timings}", flush=True)

    failed = [
        f"{name}: exit {run['code']}\n{run['output'][-2000:]}" for name in configs for run in runs[name] if run["code"]
    ]
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    seconds = {name: statistics.median(run["seconds"] for run in result) for name, result in runs.items()}
    tried = {name: sum(len(run["tried"]) for run in result) for name, result in runs.items()}
    told = all(run["code"] != 0 and f"hf download {REPO_ID}" in run["output"] for run in runs["incomplete"]) and all(
        run["code"] != 0 and f"hf download {NEVER_CACHED}" in run["output"] for run in runs["never cached"]
    )
    ratio = seconds["cached hub id"] / seconds["folder"]
    outcome = {
        "folder": f"trained {args.steps} steps",
        "cached hub id": f"trained {args.steps} steps",
        "incomplete": "stopped with the `hf download` command" if told else "did NOT stop with the download command",
        "never cached": "stopped with the `hf download` command" if told else "did NOT stop with the download command",
    }
    table = markdown_table(
        ("model.name_or_path", "median s", "ratio to folder", "connections tried", "outcome"),
        [(name, f"{seconds[name]:.2f}", f"{seconds[name] / seconds['folder']:.2f}x", str(tried[name]), outcome[name])
         for name in runs],
    )
    print(f"\n{table}\n\nratio cached_hub_id/folder {ratio:.2f}\n{machine(load_before)}")
    if args.write_doc:
        what = (
            "The tiny LTX-2 in a temporary Hugging Face cache as the snapshot of a hub id. Each row is a fresh "
            f"`python run.py` of the tiny example ({args.steps} steps, sampling and TensorBoard off) with HF_HUB_OFFLINE "
            "unset and every connection refused as on a machine without network (`socket.getaddrinfo` fails; the "
            f"attempts are counted), the median of {args.repeats} processes timed start to exit, rows alternating: "
            "`folder` names the tiny model's folder (the baseline); `cached hub id` names the hub id, every file the "
            "run reads in the cache; `incomplete` is the hub id with tokenizer/ missing from the cache, where the run "
            "must stop with the `hf download` command instead of waiting on retries; `never cached` names a hub id "
            "the cache has never held, where the run must stop the same way. `--check` fails when the cached hub id "
            f"tries a connection or takes over {CHECK_RATIO}x the folder's time, or either of the last two does not "
            "stop with the command."
        )
        body = report("A hub id without network", command_line(__file__, argv), what, [table], load_before)
        print(f"wrote {write_section('offline_hub', body)}")
    if args.check and (tried["cached hub id"] or ratio > CHECK_RATIO or not told):
        print(f"check failed: cached hub id tried {tried['cached hub id']} connections, {ratio:.2f}x the folder "
              f"(at most {CHECK_RATIO}x); incomplete cache told the download command: {told}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
