"""ai-toolkit's LTX-2 jobs load as they are: its UI's JSON job and an ai-toolkit-style YAML.

The jobs come from tests/config/aitoolkit_facts.py (what ai-toolkit writes, re-typed from its
sources); only the dataset folder and `name_or_path` are replaced.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import run
from extensions_built_in.sd_trainer.config import TrainProcessConfig
from toolkit.config import JobConfig, load_config, parse_config
from toolkit.config.aitoolkit import NOT_USED, RENAMED
from toolkit.extensions import arch_rules
from toolkit.errors import ConfigError

from tests.config.aitoolkit_facts import AITOOLKIT_LTX2_YAML, key_paths, ui_ltx2_job

P = "config.process[0]"


def local(job: dict[str, Any], clips_folder: Path) -> dict[str, Any]:
    """The job with the two things a user replaces: the dataset folder and the model."""
    process = job["config"]["process"][0]
    for dataset in process["datasets"]:
        dataset["folder_path"] = str(clips_folder)
    process["model"]["name_or_path"] = "tiny-ltx2"
    return job


@pytest.fixture
def ui_job_file(tmp_path: Path, clips_folder: Path) -> Path:
    """The UI's LTX-2 job saved as JSON, as the UI saves it."""
    path = tmp_path / "ui_ltx2_job.json"
    path.write_text(json.dumps(local(ui_ltx2_job(), clips_folder), indent=2))
    return path


@pytest.fixture
def yaml_job_file(tmp_path: Path, clips_folder: Path) -> Path:
    raw = yaml.safe_load(AITOOLKIT_LTX2_YAML)
    path = tmp_path / "ltx2_aitoolkit.yaml"
    path.write_text(yaml.safe_dump(local(raw, clips_folder), sort_keys=False))
    return path


def trainer(job: JobConfig) -> TrainProcessConfig:
    process = job.config.process[0]
    assert isinstance(process, TrainProcessConfig)
    return process


def test_every_ui_key_is_read_mapped_or_listed_as_not_used(ui_job_file: Path) -> None:
    job = load_config(ui_job_file)
    process = trainer(job)
    assert process.type == "sd_trainer"
    assert (process.model.name_or_path, process.model.quantize, process.model.low_vram) == ("tiny-ltx2", True, True)
    assert (process.train.timestep_type, process.train.optimizer, process.train.lr) == ("weighted", "adamw8bit", 1e-4)
    assert process.train.optimizer_params == {"weight_decay": 1e-4} and process.train.unload_text_encoder is False
    assert process.save.dtype == "bfloat16" and process.train.dtype == "bf16"
    assert [prompt.prompt for prompt in process.sample.prompts][:2] == [
        "woman with red hair, playing chess at the park, bomb going off in the background",
        "a woman holding a coffee cup, in a beanie, sitting at a cafe",
    ]
    dataset = process.datasets[0]
    assert (dataset.audio, dataset.fps, dataset.auto_frame_count, dataset.shrink_video_to_frames) == (True, 24, False, True)
    assert process.train.i2v is False and dataset.cache_text_embeddings is False
    assert (process.sample.num_frames, process.sample.fps, process.sample.width) == (121, 24, 768)

    notes = job.notes
    assert f"{P}.type: diffusion_trainer -> sd_trainer" in notes.mapped
    assert f"{P}.sample.samples -> prompts" in notes.mapped
    assert f"{P}.train.audio_loss_multiplier -> audio_loss_weight" in notes.mapped
    assert f"{P}.datasets[0].do_audio -> audio" in notes.mapped
    assert f"{P}.datasets[*].do_i2v -> train.i2v" in notes.mapped
    assert f"{P}.train.cache_text_embeddings -> datasets[*].cache_text_embeddings" in notes.mapped
    not_used = {note.split(" (")[0] for note in notes.not_used}
    assert {f"{P}.sqlite_db_path", f"{P}.performance_log_every", f"{P}.monitoring"} <= not_used
    assert notes.adjusted == []  # the UI's LTX-2 values (121 frames, 768 px, 512/768/1024 buckets) fit already

    # Every key the UI writes is accounted for: read under its own name, renamed, moved or set aside.
    written = key_paths(json.loads(ui_job_file.read_text()))
    read = key_paths(job.model_dump(mode="json"))
    mentioned = tuple(note.split(" ")[0].split(":")[0] for note in notes.mapped + notes.not_used)
    any_dataset = {path: re.sub(r"datasets\[\d+\]", "datasets[*]", path) for path in written}
    unaccounted = {
        path
        for path in written
        if path not in read and not (path.startswith(mentioned) or any_dataset[path].startswith(mentioned))
    }
    assert unaccounted == set()


def test_ai_toolkit_yaml_loads_with_adjusted_frames_and_sizes(yaml_job_file: Path) -> None:
    job = load_config(yaml_job_file)
    process = trainer(job)
    assert process.train.gradient_accumulation == 1 and process.train.timestep_type == "linear"
    assert process.datasets[0].num_frames == 41 and process.datasets[0].cache_text_embeddings is True
    assert (process.sample.num_frames, process.sample.width, process.sample.height) == (41, 992, 992)
    assert process.sample.sample_start_step == 0 and process.train.ema_config.use_ema is True
    assert job.notes.adjusted == [
        f"{P}.datasets[0].num_frames 40 -> 41 (LTX-2 needs 8k+1 frames)",
        f"{P}.sample.num_frames 40 -> 41 (LTX-2 needs 8k+1 frames)",
        f"{P}.sample.width 1000 -> 992 (LTX-2 needs multiples of 32)",
        f"{P}.sample.height 1000 -> 992 (LTX-2 needs multiples of 32)",
    ]
    assert f"{P}.train.gradient_accumulation_steps -> gradient_accumulation" in job.notes.mapped


def test_saved_config_holds_only_our_names(ui_job_file: Path) -> None:
    saved = trainer(load_config(ui_job_file)).model_dump(mode="json")
    assert saved["type"] == "sd_trainer" and "prompts" in saved["sample"] and "samples" not in saved["sample"]
    ai_toolkit_only = {key for table in (RENAMED, NOT_USED) for block in table.values() for key in block}
    assert ai_toolkit_only.isdisjoint(key_paths(saved) | set(saved))
    assert "do_audio" not in saved["datasets"][0] and saved["datasets"][0]["audio"] is True
    # The saved config loads again, with nothing left to map.
    assert not parse_config({"job": "extension", "config": {"name": "again", "process": [saved]}}).notes


def test_dry_run_lists_mapped_unused_and_adjusted_keys_once(
    yaml_job_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("toolkit.job.Job.dry_run", lambda job: ["config OK"])  # the memory plan is tested elsewhere
    assert run.main([str(yaml_job_file), "--dry-run"]) == run.EXIT_OK
    out = capsys.readouterr().out
    assert out.count(f"{yaml_job_file}: ai-toolkit keys read as this trainer's:") == 1
    assert out.count(f"{yaml_job_file}:   {P}.train.gradient_accumulation_steps -> gradient_accumulation") == 1
    assert out.count(f"{yaml_job_file}: not used by this trainer:") == 1
    assert f"{yaml_job_file}:   {P}.train.train_unet (the LoRA always trains the transformer)" in out
    assert out.count(f"{yaml_job_file}:   {P}.sample.num_frames 40 -> 41 (LTX-2 needs 8k+1 frames)") == 1


def test_our_own_jobs_have_nothing_to_note(valid_job: dict) -> None:
    assert not parse_config(valid_job).notes


@pytest.mark.parametrize(("frames", "nearest"), [(1, 1), (2, 1), (5, 9), (9, 9), (13, 17), (40, 41), (120, 121)])
def test_nearest_frame_count(frames: int, nearest: int) -> None:
    assert arch_rules("ltx2").nearest_frame_count(frames) == nearest


@pytest.mark.parametrize(("size", "nearest"), [(1, 32), (20, 32), (47, 32), (48, 64), (1000, 992), (1024, 1024)])
def test_nearest_multiple_of_32(size: int, nearest: int) -> None:
    assert arch_rules("ltx2").nearest_size(size) == nearest


def test_single_resolution_and_off_grid_buckets_become_a_list_on_the_grid(valid_job: dict) -> None:
    valid_job["config"]["process"][0]["datasets"][0]["resolution"] = 500
    job = parse_config(valid_job)
    assert trainer(job).datasets[0].resolution == [512]
    assert job.notes.adjusted == [
        f"{P}.datasets[0].resolution 500 -> [500] (a list of bucket sizes)",
        f"{P}.datasets[0].resolution [500] -> [512] (LTX-2 needs multiples of 32)",
    ]
    valid_job["config"]["process"][0]["datasets"][0]["resolution"] = [64, 70, 96]
    assert trainer(parse_config(valid_job)).datasets[0].resolution == [64, 96]  # 70 -> 64, listed once


def test_values_this_trainer_cannot_honour_are_reported_with_the_rest(valid_job: dict) -> None:
    process = valid_job["config"]["process"][0]
    process["type"] = "diffusion_trainer"
    process["train"].update(train_text_encoder=True, noise_scheduler="ddpm", steps=0)
    process["datasets"][0]["mask_path"] = "/masks"
    process["datasets"].append({**process["datasets"][0], "do_i2v": True, "mask_path": None})
    process["datasets"][0]["do_i2v"] = False
    process["network"]["network_kwargs"] = {"ignore_if_contains": ["attn2"]}
    process["train"].update(gradient_accumulation_steps=2, gradient_accumulation=2)
    with pytest.raises(ConfigError) as caught:
        parse_config(valid_job)
    assert caught.value.problems == [
        f"{P}.train.steps: 0 is out of range (must be >= 1)",
        f"{P}.network.network_kwargs: {{'ignore_if_contains': ['attn2']}} is not supported (list the module name "
        "suffixes to leave out in network.exclude_modules instead); remove it or set {} or {'ignore_if_contains': []}",
        f"{P}.train.gradient_accumulation_steps: ai-toolkit's name for gradient_accumulation, which is given too; "
        "keep one of them",
        f"{P}.train.train_text_encoder: True is not supported (this trainer does not train the text encoder); "
        "remove it or set False",
        f"{P}.train.noise_scheduler: 'ddpm' is not supported (LTX-2 trains with flow matching only); "
        "remove it or set 'flowmatch'",
        f"{P}.datasets[0].mask_path: '/masks' is not supported (this trainer has no loss masks); "
        "remove it or set None or ''",
        f"{P}.datasets: do_i2v differs between datasets; this trainer sets image-to-video for the whole run: "
        "remove do_i2v and set train.i2v (true, false or a probability)",
    ]


@pytest.mark.parametrize(
    ("block", "key", "hint"),
    [
        ("train", "force_first_sampl", "did you mean 'force_first_sample'?"),
        ("train", "lr_schedular", "did you mean 'lr_scheduler'?"),
        ("train", "cache_latents_to_disk", f"belongs under {P}.datasets[]"),
        ("train", "linear_alpha", f"belongs under {P}.network"),
        ("model", "trigger_word", f"belongs under {P};"),
        ("datasets", "steps", f"belongs under {P}.train"),
    ],
)
def test_hints_name_the_same_setting_or_its_block(valid_job: dict, block: str, key: str, hint: str) -> None:
    process = valid_job["config"]["process"][0]
    target = process["datasets"][0] if block == "datasets" else process[block]
    target[key] = 1
    with pytest.raises(ConfigError) as caught:
        parse_config(valid_job)
    (problem,) = caught.value.problems
    assert hint in problem


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ("train", "skip_last_sample"),
        ("train", "num_repeats_total"),
        ("train", "max_scheduler"),
        ("model", "unload_te"),
        ("network", "conv_alpha_x"),
    ],
)
def test_no_hint_towards_a_different_setting(valid_job: dict, block: str, key: str) -> None:
    valid_job["config"]["process"][0][block][key] = 1
    with pytest.raises(ConfigError) as caught:
        parse_config(valid_job)
    (problem,) = caught.value.problems
    assert "did you mean" not in problem and "belongs under" not in problem


def test_former_opposite_hints_are_gone() -> None:
    from toolkit.config.problems import _is_misspelling

    for key, name in [
        ("force_first_sample", "skip_first_sample"),
        ("num_repeats", "num_frames"),
        ("noise_scheduler", "lr_scheduler"),
        ("train_text_encoder", "unload_text_encoder"),
        ("conv_alpha", "linear_alpha"),
    ]:
        assert not _is_misspelling(key, name), (key, name)
    for key, name in [("qtpye", "qtype"), ("folder", "folder_path"), ("quantise", "quantize"), ("modle", "model")]:
        assert _is_misspelling(key, name), (key, name)


def test_docs_list_every_mapped_and_unused_key() -> None:
    section = (Path(__file__).resolve().parents[2] / "docs" / "aitoolkit.md").read_text()
    keys = {key for table in (RENAMED, NOT_USED) for block in table.values() for key in block}
    keys |= {"diffusion_trainer", "ui_trainer", "cache_text_embeddings", "do_i2v"}
    assert {key for key in keys if not re.search(rf"(?<![\w]){key}(?![\w])", section)} == set()


def test_docs_converted_example_is_the_ui_job(ui_job_file: Path, clips_folder: Path) -> None:
    section = (Path(__file__).resolve().parents[2] / "docs" / "aitoolkit.md").read_text()
    converted = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    converted_job = parse_config(local(converted, clips_folder))
    assert not converted_job.notes  # written with our names only
    ui_process = trainer(load_config(ui_job_file)).model_dump(mode="json")
    ui_process["sample"]["prompts"] = ui_process["sample"]["prompts"][:1]  # the docs keep one prompt
    assert trainer(converted_job).model_dump(mode="json") == ui_process


def test_process_type_problem_does_not_hide_the_others(valid_job: dict) -> None:
    process = valid_job["config"]["process"][0]
    process.update(type="diffusion_trainr", device="gpu")
    process["model"]["qtype"] = "q9"
    process["save"] = {"push_to_hub": True}
    with pytest.raises(ConfigError) as caught:
        parse_config(valid_job)
    problems = caught.value.problems
    assert problems[0].startswith(f"{P}.type: unknown process type 'diffusion_trainr' (registered: ")
    assert problems[0].endswith("; the other keys were checked as sd_trainer")
    assert problems[1:] == [
        f"{P}.device: device 'gpu' is not one of cpu, cuda, cuda:N (N = GPU index), auto",
        f"{P}.model.qtype: 'q9' is not allowed (allowed: 'qfloat8', 'qint8', 'qint4' or 'uint4')",
        f"{P}.save: push_to_hub needs hf_repo_id (the Hub repo, user/name); set it or switch push_to_hub off",
    ]


def test_the_schedules_warmup_moves_to_lr_warmup_steps(valid_job: dict) -> None:
    """ai-toolkit gives a schedule's warmup in lr_scheduler_params.num_warmup_steps; ours is train.lr_warmup_steps."""
    valid_job["config"]["process"][0]["train"].update(
        lr_scheduler="cosine", lr_scheduler_params={"num_warmup_steps": 50, "num_cycles": 0.5}
    )
    job = parse_config(valid_job)
    train = trainer(job).train
    assert (train.lr_warmup_steps, train.lr_scheduler_params) == (50, {"num_cycles": 0.5})
    assert job.notes.mapped == [f"{P}.train.lr_scheduler_params.num_warmup_steps -> train.lr_warmup_steps"]
    valid_job["config"]["process"][0]["train"].update(lr_scheduler_params={"num_warmup_steps": 50}, lr_warmup_steps=10)
    with pytest.raises(ConfigError) as caught:
        parse_config(valid_job)
    assert f"{P}.train.lr_scheduler_params.num_warmup_steps: ai-toolkit's place for train.lr_warmup_steps" in (
        caught.value.problems[0]
    )
