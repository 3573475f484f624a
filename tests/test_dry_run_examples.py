"""Every config in config/examples/, and ai-toolkit's default LTX-2 UI job, dry-run clean after the README's install.

In-process `run.main([..., "--dry-run"])`: the dry runs read no weights (the 24 GB examples plan the published
architecture on the meta device, the tiny ones read the tiny model's configs). What this machine lacks (a CUDA
device) is one line at the end of the report, and the exit code stays 0: the plan is made for the machine
that trains, which is often not this one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import run
from tests.config.aitoolkit_facts import ui_ltx2_job

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO_ROOT / "config" / "examples").glob("*.yaml"))
REFUSAL = "On this machine the run would stop before loading: "


def _dry_run(capsys, *argv: str) -> tuple[int, str, str]:
    code = run.main([*argv, "--dry-run"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_refusal_line(out: str, device: str) -> None:
    refusals = [line for line in out.splitlines() if line.startswith(REFUSAL)]
    if device.startswith("cuda") and not torch.cuda.is_available():
        assert refusals == [
            f"{REFUSAL}device: {device!r} was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}, a build without CUDA); use device: cpu"
        ]
        assert out.rstrip().endswith(refusals[0])  # the last line, after the plan
    else:
        assert refusals == []


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_dry_runs_clean(example: Path, tiny_cache_dir, capsys, monkeypatch) -> None:
    import yaml

    monkeypatch.chdir(REPO_ROOT)  # the examples name data/demo_clips relative to the repository
    bitsandbytes_before = sys.modules.get("bitsandbytes", "absent")
    code, out, err = _dry_run(capsys, str(example))
    assert code == run.EXIT_OK, err
    assert "Memory plan for" in out and "no weights read" in out and "sampling" in out
    process = yaml.safe_load(example.read_text())["config"]["process"][0]
    if process["type"] == "sd_trainer":
        assert "training" in out
    if "24gb" in example.name:
        assert "published LTX-2." in out and "24.00 GiB" in out
        assert "12.19 B" in out  # Gemma 3 12B
        assert ("18.88 B" if "2.3" not in example.name else "18.99 B") in out
    _assert_refusal_line(out, process["device"])
    # adamw8bit is looked for, not imported: the dry run does not pay for bitsandbytes' import.
    assert sys.modules.get("bitsandbytes", "absent") is bitsandbytes_before


def test_ai_toolkit_ui_default_job_dry_runs_clean(tmp_path: Path, demo_clips: Path, capsys) -> None:
    """ai-toolkit's UI job for LTX-2 as saved, with only its paths replaced (the model stays Lightricks/LTX-2)."""
    job = ui_ltx2_job()
    process = job["config"]["process"][0]
    process["training_folder"] = str(tmp_path / "output")
    process["datasets"][0]["folder_path"] = str(demo_clips)
    path = tmp_path / "ui_ltx2_job.json"
    path.write_text(json.dumps(job))
    code, out, err = _dry_run(capsys, str(path))
    assert code == run.EXIT_OK, err
    assert "Memory plan for published LTX-2.0 19B architecture" in out and "18.88 B" in out
    assert process["train"]["optimizer"] == "adamw8bit" and process["device"] == "cuda"
    _assert_refusal_line(out, "cuda")


def test_a_missing_optimizer_package_stops_the_dry_run(monkeypatch, capsys) -> None:
    """adamw8bit without bitsandbytes is a config error (exit 2) naming the package, like the run."""
    monkeypatch.setattr("extensions_built_in.sd_trainer.optim.is_installed", lambda name: name != "bitsandbytes")
    code, _, err = _dry_run(capsys, str(REPO_ROOT / "config" / "examples" / "train_lora_ltx2_24gb.yaml"))
    assert code == run.EXIT_CONFIG_ERROR
    assert "train.optimizer: adamw8bit needs the bitsandbytes package, which is not installed" in err
    assert "pip install bitsandbytes==0.50.2" in err


def test_a_dry_run_of_a_hub_id_asks_the_local_hub_cache_only(monkeypatch, capsys) -> None:
    """The 24 GB example names Lightricks/LTX-2, which is not in the hub cache here: every lookup of its files is
    local (offline, the check of the components' configs fetched model_index.json with 5 retries: 23 s more).
    Lookups in the cache are recorded; one that would go to the hub is recorded and refused as an offline hub
    refuses it: nothing downloads."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    asked = []
    in_cache = huggingface_hub.try_to_load_from_cache

    def cache_lookup(repo_id, filename, *args, **kwargs):
        asked.append((repo_id, filename, "cache"))
        return in_cache(repo_id, filename, *args, **kwargs)

    def hub_request(name):
        def refused(repo_id, *args, **kwargs):
            if kwargs.get("local_files_only"):
                return original[name](repo_id, *args, **kwargs)
            asked.append((repo_id, args[0] if args else kwargs.get("allow_patterns"), "hub"))
            raise LocalEntryNotFoundError(f"{repo_id}: this test lets no lookup reach the hub")

        return refused

    original = {name: getattr(huggingface_hub, name) for name in ("hf_hub_download", "snapshot_download")}
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", cache_lookup)
    for name in original:
        monkeypatch.setattr(huggingface_hub, name, hub_request(name))
    code, out, err = _dry_run(capsys, str(REPO_ROOT / "config" / "examples" / "train_lora_ltx2_24gb.yaml"))
    assert code == run.EXIT_OK, err
    assert "Lightricks/LTX-2's configs are not in the local hub cache" in out
    assert ("Lightricks/LTX-2", "model_index.json", "cache") in asked
    assert [ask for ask in asked if ask[2] == "hub"] == []
