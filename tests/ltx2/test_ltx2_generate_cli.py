"""config/examples/generate_ltx2_tiny.yaml through run.py, with the trace on (in a child process, the console a
user sees) and off (run.py's main() in this process: nothing traced anywhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "examples" / "generate_ltx2_tiny.yaml"
RUN_NAME = "ltx2_tiny_generate"


def run_cli(args: list[str], cwd: Path, cache_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "LTX2_TRACE_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def describe_mp4(path: Path) -> tuple[int, int, int, int | None]:
    """(decoded frames, width, height, audio sample rate or None)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.width, stream.height
        sample_rate = container.streams.audio[0].sample_rate if container.streams.audio else None
        frame_count = sum(1 for _ in container.decode(video=0))
    return frame_count, width, height, sample_rate


def generate(tmp_path: Path, cache_dir: Path, *overrides: str):
    output = tmp_path / "output"
    args = [str(EXAMPLE), "--set", f"config.process.0.output_folder={output}"]
    for override in overrides:
        args += ["--set", override]
    return run_cli(args, tmp_path, cache_dir), output / RUN_NAME


@pytest.mark.slow
def test_verbose_generate_writes_clips_and_traces(tiny_model_dir, tiny_cache_dir, tmp_path):
    result, run_folder = generate(tmp_path, tiny_cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    verbose = [line for line in result.stdout.splitlines() if line.lstrip().startswith("[VERBOSE]")]
    assert any("load_component" in line and "component=transformer" in line for line in verbose)
    assert any("generate_single_image done in" in line for line in verbose)
    clips = sorted(run_folder.glob("*.mp4"))
    assert [clip.name for clip in clips] == ["000_42.mp4", "001_7.mp4"]  # seed 42 + index, then the prompt's seed 7
    for clip in clips:
        assert describe_mp4(clip) == (9, 64, 64, 16000)
    assert (run_folder / "trace.jsonl").stat().st_size > 0
    assert (run_folder / "trace.json").stat().st_size > 0


def test_quiet_generate_writes_clips_only(tiny_model_dir, tiny_cache_dir, tmp_path, capfd, monkeypatch):
    import run
    from toolkit.logging import LogManager

    monkeypatch.chdir(tmp_path)  # as the child processes here run: whatever a relative path names lands in tmp_path
    run_folder = tmp_path / "output" / RUN_NAME
    args = [str(EXAMPLE), "--set", f"config.process.0.output_folder={run_folder.parent}",
            "--set", "config.process.0.model.verbose=false"]
    try:
        code = run.main(args)
    finally:
        LogManager.get_instance().cleanup()
    captured = capfd.readouterr()
    assert code == run.EXIT_OK, captured.err[-3000:]
    assert "[VERBOSE]" not in captured.out + captured.err
    assert sorted(path.name for path in run_folder.glob("*.mp4")) == ["000_42.mp4", "001_7.mp4"]
    assert not list(tmp_path.rglob("trace.json*"))


def test_misspelled_model_key_fails_before_loading_naming_its_place(tiny_cache_dir, tmp_path):
    config = yaml.safe_load(EXAMPLE.read_text())
    config["config"]["process"][0]["model"]["quantise"] = True
    config_path = tmp_path / "typo.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = run_cli([str(config_path)], tmp_path, tiny_cache_dir)
    assert result.returncode == 2
    assert "config.process[0].model.quantise" in result.stderr
    assert "did you mean 'quantize'" in result.stderr
    assert not (tmp_path / "output").exists()


@pytest.mark.parametrize("value", ["-1", "many"])
def test_generate_settings_are_validated_before_loading(tiny_cache_dir, tmp_path, value):
    # Counts off LTX-2's 8k+1 grid are moved onto it (toolkit/config/frame_rules.py); negative or
    # non-numeric ones are config errors, not a crash mid-run.
    result = run_cli([str(EXAMPLE), "--set", f"config.process.0.generate.num_frames={value}"], tmp_path, tiny_cache_dir)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "config.process[0].generate.num_frames" in result.stderr
