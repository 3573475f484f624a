"""How long the check before loading takes on the tiny example's demo clips, as a ratio to importing PyAV.

    python benchmarks/bench_preflight_media.py [--repeats 7] [--write-doc]

The check runs before every training (`run.py`, dry run or not), and now reads each
clip's headers with PyAV, so its floor is `python -c "import av"`. Fresh interpreters,
interleaved, each counted at its fastest of ``--repeats``:
- ``import av``: the bare interpreter plus PyAV;
- the config load and the whole check before loading of train_lora_ltx2_tiny.yaml
  (schema, folders, captions, the media headers), in a fresh interpreter;
and, inside the second, the check alone (after the imports; it imports PyAV) and its media part alone
(PyAV imported, headers read afresh).
Ratios mean the same on an idle machine and a busy one. Not part of the tests. `--write-doc` puts the table
into docs/benchmarks.md (section `preflight_media`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from doc_section import command_line, load_average, machine, markdown_table, report, write_section

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_EXAMPLE = REPO_ROOT / "config" / "examples" / "train_lora_ltx2_tiny.yaml"

CHECK = f"""
import json, sys, time
from pathlib import Path
from toolkit.config import load_config
from toolkit.preflight import check_before_loading
from toolkit.preflight.media import _read_header, media_findings
job = load_config({str(TINY_EXAMPLE)!r})
started = time.perf_counter()
check_before_loading(job)
check_s = time.perf_counter() - started
dataset = job.config.process[0].datasets[0]
_read_header.cache_clear()  # read the headers again, as a first check would (PyAV now imported)
started = time.perf_counter()
media_findings(dataset, Path(dataset.folder_path), "datasets[0]", job.config.process[0].model.arch_rules())
media_s = time.perf_counter() - started
print(json.dumps({{"check_s": check_s, "media_s": media_s, "torch": "torch" in sys.modules}}))
"""


def timed(command: list[str]) -> tuple[float, str]:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return elapsed, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    bare, whole, check, media = [], [], [], []
    for _ in range(args.repeats):
        bare.append(timed([sys.executable, "-c", "import av"])[0])
        elapsed, out = timed([sys.executable, "-c", CHECK])
        inner = json.loads(out.strip().splitlines()[-1])
        if inner["torch"]:
            raise SystemExit("the check before loading imported torch")
        whole.append(elapsed)
        check.append(inner["check_s"])
        media.append(inner["media_s"])
    floor = min(bare)
    rows = [
        ("`python -c \"import av\"` (bare)", floor),
        ("config load + check before loading (fresh interpreter)", min(whole)),
        ("the check alone, after the imports", min(check)),
        ("of which the media headers (4 demo clips)", min(media)),
    ]
    table = markdown_table(("", "seconds", "ratio to bare"), [(label, f"{s:.3f}", f"{s / floor:.2f}x") for label, s in rows])
    print(f"fastest of {args.repeats}; {machine(load_before)}\n{table}\ntorch imported: no")
    if args.write_doc:
        what = (
            "The check before loading of train_lora_ltx2_tiny.yaml (schema, folders, captions, the media headers read "
            "with PyAV), which runs before every training, dry run or not. Fresh interpreters, interleaved, the "
            f"fastest of {args.repeats} counting: `import av` (the check's floor: the interpreter plus PyAV) and the "
            "config load with the whole check; inside the second, the check alone after the imports and its media "
            "part alone (headers read afresh). The ratio is each / `import av`. The check imports no torch (the "
            f"script stops if it did). OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}."
        )
        body = report("Checks before loading", command_line(__file__), what, [table], load_before)
        print(f"wrote {write_section('preflight_media', body)}")

if __name__ == "__main__":
    main()
