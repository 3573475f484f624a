"""Fault suite, config half: each mistake in a job file fails before anything loads, with exit 2.

Every case writes its files into its own folder, runs run.py in a child
process (tests/faults/probe_run.py) and checks: the exit code, that the
message names the key path or the file, that no job started (so no model
was loaded and no run folder made), that there is no traceback, and, for
every mistake that needs no model code, that torch was never imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.conftest import DEMO_CLIPS, copy_clips, run_probe, training_job, write_yaml

Setup = Callable[[Path], tuple[list[str], list[str]]]  # folder -> (run.py arguments, texts the message must hold)


@dataclass(frozen=True)
class ConfigFault:
    name: str
    setup: Setup
    torch_free: bool = True  # LoRA filters are checked on the meta-device transformer, which needs torch


def expect(setup: Setup, *texts: str) -> Setup:
    """`setup`, with texts the message must contain ({folder} is the case's folder)."""

    def wrapped(folder: Path) -> tuple[list[str], list[str]]:
        args, found = setup(folder)
        return args, found + [text.format(folder=folder) for text in texts]

    return wrapped


def raw_file(name: str, text: str) -> Setup:
    def setup(folder: Path) -> tuple[list[str], list[str]]:
        path = write_yaml(folder / name, text)
        return [str(path)], [str(path)]

    return setup


def edited(edit: Callable[[dict, Path], None], *extra_args: str) -> Setup:
    """The small valid job, changed by `edit(job, folder)`."""

    def setup(folder: Path) -> tuple[list[str], list[str]]:
        job = training_job(folder)
        edit(job, folder)
        return [str(write_yaml(folder / "job.yaml", job)), *extra_args], []

    return setup


def process(job: dict) -> dict:
    return job["config"]["process"][0]


def dataset_folder(make: Callable[[Path], None], **dataset) -> Setup:
    """The job with its dataset in a folder of its own, prepared by `make(folder)`."""

    def edit(job: dict, folder: Path) -> None:
        clips = folder / "clips"
        clips.mkdir(parents=True, exist_ok=True)
        make(clips)
        process(job)["datasets"] = [{"folder_path": str(clips), "num_frames": 9, **dataset}]

    return edited(edit)


def _duplicate_key_yaml(folder: Path) -> tuple[list[str], list[str]]:
    text = write_yaml(folder / "base.yaml", training_job(folder)).read_text()
    text = re.sub(r"(?m)^( +)lr: 0.001$", r"\1lr: 0.001\n\1lr: 0.1", text)
    return [str(write_yaml(folder / "job.yaml", text))], []


def _duplicate_key_json(folder: Path) -> tuple[list[str], list[str]]:
    text = json.dumps(training_job(folder)).replace('"name": "fault"', '"name": "fault", "name": "again"')
    return [str(write_yaml(folder / "job.json", text))], []


def _two_files(folder: Path) -> tuple[list[str], list[str]]:
    first = training_job(folder)
    process(first)["model"]["qtpye"] = "qint8"
    second = training_job(folder)
    _sampling_without_prompts(second, folder)
    (folder / "empty").mkdir()
    process(second)["datasets"][0]["folder_path"] = str(folder / "empty")
    paths = [write_yaml(folder / "first.yaml", first), write_yaml(folder / "second.yaml", second)]
    return [str(path) for path in paths], [
        f"Invalid config {paths[0]}",
        f"Invalid config {paths[1]}",
        "config.process[0].datasets[0].folder_path",
        "config.process[0].sample.prompts",
    ]


def _no_caption_files(clips: Path) -> None:
    copy_clips(clips, 2)
    for caption in clips.glob("*.txt"):
        caption.rename(caption.with_suffix(".caption"))


def _caption_not_utf8(clips: Path) -> None:
    copy_clips(clips, 1)
    (clips / "demo_00.txt").write_bytes(b"caf\xe9 au lait")


def _no_media(clips: Path) -> None:
    (clips / "clip.gif").write_bytes(b"GIF89a")
    (clips / "notes.txt").write_text("notes")


def _set(path: str, value) -> Callable[[dict, Path], None]:
    """An edit that sets a dotted key under config.process[0] (list items by number)."""

    def edit(job: dict, folder: Path) -> None:
        *parents, last = path.split(".")
        node = process(job)
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _drop(key: str) -> Callable[[dict, Path], None]:
    return lambda job, folder: process(job).pop(key)


def _file_blocks_output(job: dict, folder: Path) -> None:
    (folder / "blocker").write_text("a file where a folder should be")
    process(job)["training_folder"] = str(folder / "blocker" / "runs")


def _sampling_without_prompts(job: dict, folder: Path) -> None:
    process(job)["sample"] = {"sample_every": 2}
    process(job)["train"]["disable_sampling"] = False


def _missing_ctrl_img(job: dict, folder: Path) -> None:
    process(job)["sample"] = {"prompts": [{"prompt": "a red square", "ctrl_img": str(folder / "first.png")}]}
    process(job)["train"]["disable_sampling"] = False


def _exclude_every_target(job: dict, folder: Path) -> None:
    process(job)["network"].update(target_modules=["attn1.to_q"], exclude_modules=["attn1.to_q"])


def _lora_filters_that_select_nothing(folder: Path) -> tuple[list[str], list[str]]:
    """A target that matches nothing, and in a second file an exclude that removes every target: both are
    checked on the meta-device transformer, which needs torch, so one run.py start checks both files."""
    no_match = training_job(folder)
    process(no_match)["network"]["target_modules"] = ["attn1.to_qq"]
    all_excluded = training_job(folder)
    _exclude_every_target(all_excluded, folder)
    paths = [write_yaml(folder / "no_match.yaml", no_match), write_yaml(folder / "all_excluded.yaml", all_excluded)]
    return [str(path) for path in paths], [
        f"Invalid config {paths[0]}",
        f"{P}.network.target_modules",
        "'attn1.to_qq' matches no linear layer",
        f"Invalid config {paths[1]}",
        f"{P}.network.exclude_modules",
    ]


def _unchanged(job: dict, folder: Path) -> None:
    return None


def case(name: str, setup: Setup, *texts: str, torch_free: bool = True) -> ConfigFault:
    return ConfigFault(name, expect(setup, *texts), torch_free)


P = "config.process[0]"
D = f"{P}.datasets[0]"
CASES = [
    # -- bad YAML / JSON files --------------------------------------------------------------------
    case("yaml_unclosed_bracket", raw_file("job.yaml", "job: x\nconfig:\n  process: [\n"), "at line 4"),
    case("yaml_tab_indent", raw_file("job.yaml", "job: x\nconfig:\n\tname: x\n"), "at line 3"),
    case("yaml_key_given_twice", _duplicate_key_yaml, f"{P}.train.lr: key given twice (line"),
    case("json_key_given_twice", _duplicate_key_json, "config.name: key given more than once"),
    case("json_syntax", raw_file("job.json", '{"job": "x",\n "config": }'), "not valid JSON at line 2"),
    case("empty_file", raw_file("job.yaml", ""), "the file is empty"),
    case("top_level_list", raw_file("job.yaml", "- job\n- config\n"), "found list"),
    case("wrong_extension", raw_file("job.toml", "job = 1\n"), "has extension '.toml'"),
    case("missing_file", lambda folder: ([str(folder / "nope.yaml")], []), "{folder}/nope.yaml not found"),
    case("config_is_a_folder", lambda folder: ([str(folder)], []), "{folder} is a folder"),
    # -- bad values -----------------------------------------------------------------------------------
    case("misspelled_key", edited(_set("model.qtpye", "q")), f"{P}.model.qtpye", "did you mean 'qtype'"),
    case("negative_lr", edited(_set("train.lr", -1)), f"{P}.train.lr"),
    case("steps_not_a_number", edited(_set("train.steps", "ten")), f"{P}.train.steps"),
    # Off-grid frame counts and sizes are adjusted (10 -> 9, 50 -> 64); what cannot be adjusted fails.
    case("frames_not_a_count", edited(_set("datasets.0.num_frames", 0)), f"{D}.num_frames"),
    case("resolution_not_a_size", edited(_set("datasets.0.resolution", [-64])), f"{D}.resolution"),
    case("unknown_process_type", edited(_set("type", "sd_trainerr")), f"{P}.type", "sd_trainer"),
    case("unknown_device", edited(_set("device", "tpu")), f"{P}.device"),
    case("unknown_dtype", edited(_set("train.dtype", "fp64")), f"{P}.train.dtype"),
    case("unknown_arch", edited(_set("model.arch", "ltx3")), f"{P}.model.arch"),
    case("lora_rank_zero", edited(_set("network.linear", 0)), f"{P}.network.linear"),
    case("datasets_missing", edited(_drop("datasets")), f"{P}.datasets: required key missing"),
    case("preservation_no_trigger", edited(_set("train.diff_output_preservation", True)), "trigger_word"),
    case("set_without_equals", edited(_unchanged, "--set", "a.b"), "--set 'a.b': expected dotted.key=value"),
    case("set_unknown_key", edited(_unchanged, "--set", "config.process.0.train.x=3"), f"{P}.train.x", "--set"),
    # -- what the values point to, checked before loading (toolkit/preflight) -------------------------
    case("dataset_folder_missing", edited(_set("datasets.0.folder_path", "/no/clips")), f"{D}.folder_path", "/no/clips"),
    case("dataset_folder_empty", dataset_folder(lambda clips: None), f"{D}.folder_path", "{folder}/clips is empty"),
    case("dataset_without_media", dataset_folder(_no_media), f"{D}.folder_path", "clip.gif"),
    case(
        "captions_missing_by_caption_ext",
        dataset_folder(_no_caption_files),
        f"{D}.caption_ext",
        "demo_00.mp4 needs demo_00.txt",
        "caption_ext 'txt'",
        "default_caption",
        ".caption (2)",
    ),
    case("caption_not_utf8", dataset_folder(_caption_not_utf8), f"{D}.caption_ext", "demo_00.txt: caption is not UTF-8"),
    case("sampling_without_prompts", edited(_sampling_without_prompts), f"{P}.sample.prompts", "no prompts"),
    case("ctrl_img_missing", edited(_missing_ctrl_img), f"{P}.sample.prompts[0].ctrl_img", "{folder}/first.png"),
    case("training_folder_under_a_file", edited(_file_blocks_output), f"{P}.training_folder", "blocker is a file"),
    case("pretrained_lora_missing", edited(_set("network.pretrained_lora_path", "x.pt")), f"{P}.network.pretrained_lora_path"),
    ConfigFault("lora_filters_that_select_nothing", _lora_filters_that_select_nothing, torch_free=False),
    ConfigFault("problems_in_two_files_together", _two_files),
    case("dry_run_runs_the_same_checks", edited(_sampling_without_prompts, "--dry-run"), f"{P}.sample.prompts"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_config_fault_fails_before_loading(case: ConfigFault, tmp_path: Path) -> None:
    args, texts = case.setup(tmp_path)
    outcome = run_probe(args, cwd=tmp_path)
    assert outcome.returncode == 2, outcome.output[-3000:]
    message = outcome.stderr
    assert message.startswith("error: "), message[-3000:]
    for text in texts:
        assert text in message, (text, message[-3000:])
    assert "Traceback" not in message
    assert outcome.probe == {"job_started": False, "torch_imported": not case.torch_free}, message[-3000:]
    assert not (tmp_path / "out").exists()  # no run folder: nothing was set up, loaded or written


def test_the_table_covers_at_least_thirty_config_faults() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 30
