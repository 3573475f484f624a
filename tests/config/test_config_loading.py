"""Reading job files: defaults, [name], --set overrides, JSON, merging, and the file-level errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from extensions_built_in.generate.config import GenerateProcessConfig
from extensions_built_in.sd_trainer.config import TrainProcessConfig
from toolkit.config import JobConfig, SamplePrompt, load_config, parse_config
from toolkit.errors import ConfigError

WriteJob = Callable[..., Path]
REPO_ROOT = Path(__file__).resolve().parents[2]


def first_process(job: JobConfig) -> TrainProcessConfig:
    process = job.config.process[0]
    assert isinstance(process, TrainProcessConfig)
    return process


def test_valid_yaml_loads_typed_with_defaults(write_job: WriteJob, valid_job: dict) -> None:
    train = first_process(load_config(write_job(valid_job)))
    assert train.model.quantize is True and train.model.qtype == "qint8"
    assert train.model.te_dtype == "fp32"  # follows model.dtype
    assert train.model.te_device == "cpu"  # follows the process device
    assert train.train.lr == pytest.approx(1e-4)  # "1e-4" (a string in YAML 1.1) becomes a number
    assert train.train.timestep_shift == 3.0 and train.train.unload_text_encoder is True
    assert train.datasets[0].resolution == [32, 64]
    assert train.sample.prompts == [SamplePrompt(prompt="a cat cat_lora"), SamplePrompt(prompt="a dog", seed=7)]
    assert train.save.format == "comfy" and train.logging.inspect is False and train.logging.inspect_every == 100


def test_name_placeholder_is_replaced_everywhere(write_job: WriteJob, valid_job: dict) -> None:
    job = load_config(write_job(valid_job))
    assert job.meta == {"name": "cat_lora", "version": "1.0"}
    assert first_process(job).training_folder == "output/cat_lora"


def test_explicit_text_encoder_settings_are_kept(write_job: WriteJob, valid_job: dict) -> None:
    valid_job["config"]["process"][0]["model"].update(te_dtype="bf16", te_device="cuda:1")
    model = first_process(load_config(write_job(valid_job))).model
    assert (model.te_dtype, model.te_device) == ("bf16", "cuda:1")


def test_set_overrides_are_parsed_as_yaml(write_job: WriteJob, valid_job: dict) -> None:
    job = load_config(
        write_job(valid_job),
        overrides=[
            "config.process.0.model.verbose=true",
            "config.process[0].train.lr=5e-5",
            "config.process.0.datasets.0.resolution=[64, 96]",
            "config.process.0.sample.prompts.1.prompt=a horse",
            "config.process.0.logging.log_every=3",
            "config.name=renamed",
        ],
    )
    train = first_process(job)
    assert train.model.verbose is True
    assert train.train.lr == pytest.approx(5e-5)
    assert train.datasets[0].resolution == [64, 96]
    assert train.sample.prompts[1] == SamplePrompt(prompt="a horse", seed=7)
    assert train.logging.log_every == 3
    assert job.config.name == "renamed" and train.training_folder == "output/renamed"


def test_set_unknown_key_is_reported_like_one_from_the_file(write_job: WriteJob, valid_job: dict) -> None:
    path = write_job(valid_job)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides=["config.process.0.train.learning_rate=1"])
    assert caught.value.source == str(path)
    (problem,) = caught.value.problems
    assert problem.startswith("config.process[0].train.learning_rate: unknown key (")
    assert problem.endswith("[from --set config.process.0.train.learning_rate=1]")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("config.process.3.model.verbose=true", "config.process has 1 item(s), so index 3 does not exist"),
        ("config.process.model=x", "config.process is a list; address its items by number"),
        ("config.name.first=x", "config.name is 'cat_lora', not a mapping or list, so it has no 'first'"),
        ("verbose", "expected dotted.key=value"),
        ("config.name=[unclosed", "the value '[unclosed' is not valid YAML"),
    ],
)
def test_set_errors_name_the_override(write_job: WriteJob, valid_job: dict, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_job(valid_job), overrides=[override])
    (problem,) = caught.value.problems
    assert problem.startswith(f"--set {override!r}: ")
    assert message in problem


def test_json_config_loads_like_yaml(write_job: WriteJob, valid_job: dict) -> None:
    from_json = load_config(write_job(valid_job, "job.json"))
    from_yaml = load_config(write_job(valid_job, "job.yaml"))
    assert from_json == from_yaml


def test_dump_round_trips_through_validation(write_job: WriteJob, valid_job: dict) -> None:
    job = load_config(write_job(valid_job))
    dumped = job.model_dump()
    assert dumped["config"]["process"][0]["train"]["steps"] == 10  # subclass fields are dumped
    assert JobConfig.model_validate(dumped) == job


def test_force_verbose_turns_on_every_model(write_job: WriteJob, valid_job: dict) -> None:
    valid_job["config"]["process"].append(
        {"type": "generate", "device": "cuda", "model": {"name_or_path": "tiny-ltx2"}, "generate": {"prompts": ["x"]}}
    )
    job = load_config(write_job(valid_job), force_verbose=True)
    train, generate = job.config.process
    assert isinstance(generate, GenerateProcessConfig)
    assert train.model.verbose is True and generate.model.verbose is True
    assert generate.model.te_device == "cuda"
    assert load_config(write_job(valid_job)).config.process[1].model.verbose is False


def test_several_files_merge_in_order(write_job: WriteJob, valid_job: dict) -> None:
    base = write_job(valid_job, "base.yaml")
    experiment = write_job(
        {"config": {"name": "fast", "process": [{"train": {"lr": 3e-4}, "datasets": [{"num_frames": 9}]}]}},
        "experiment.yaml",
    )
    job = load_config([base, experiment])
    train = first_process(job)
    assert job.config.name == "fast"
    assert train.train.lr == pytest.approx(3e-4) and train.train.steps == 10
    assert train.datasets[0].num_frames == 9 and train.datasets[0].resolution == [32, 64]
    assert train.model.qtype == "qint8"


def test_merged_files_are_named_in_errors(write_job: WriteJob, valid_job: dict) -> None:
    base = write_job(valid_job, "base.yaml")
    bad = write_job({"config": {"process": [{"train": {"lr": "fast"}}]}}, "bad.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config([base, bad])
    assert caught.value.source == f"{base} + {bad}"
    assert caught.value.problems == ["config.process[0].train.lr: 'fast' is not a number"]


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"config file {path} not found"):
        load_config(path)


def test_yaml_syntax_error_gives_line_and_column(write_job: WriteJob) -> None:
    path = write_job("job: extension\nconfig:\n  name: x\n  process: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"config file {path} is not valid YAML at line 5, column 1:")


def test_json_syntax_error_gives_line_and_column(write_job: WriteJob) -> None:
    path = write_job('{"job": "extension",\n  "config": }', "job.json")
    with pytest.raises(ConfigError, match=r"is not valid JSON at line 2, column 13: Expecting value"):
        load_config(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.yaml", "", "must hold a mapping with keys job, config, meta; found nothing (the file is empty)"),
        ("list.yaml", "- a\n- b\n", "must hold a mapping with keys job, config, meta; found list"),
        ("job.toml", "job = 1", "has extension '.toml'; use .yaml, .yml or .json"),
    ],
)
def test_files_that_are_not_job_mappings(write_job: WriteJob, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write_job(text, name))


def test_parse_config_leaves_the_mapping_untouched(valid_job: dict) -> None:
    before = repr(valid_job)
    job = parse_config(valid_job, overrides=["config.process.0.train.steps=3"])
    assert first_process(job).train.steps == 3
    assert repr(valid_job) == before


def test_validation_does_not_import_torch(write_job: WriteJob, valid_job: dict) -> None:
    path = write_job(valid_job)
    code = (
        "import sys\n"
        "from toolkit.config import load_config\n"
        f"load_config({str(path)!r})\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def test_process_list_items_keep_their_registered_class(valid_job: dict) -> None:
    job = parse_config(valid_job)
    assert type(job.config.process[0]) is TrainProcessConfig
    assert isinstance(job.config.process[0].sample.prompts[0], SamplePrompt)
