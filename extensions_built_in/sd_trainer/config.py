"""`type: sd_trainer`'s config: the process mapping, validated by pydantic alone (no torch), registered in __init__.py.

Its blocks (datasets, network, save, train, sample, logging) are the toolkit's (toolkit/config); what to
check before loading is listed here, from the toolkit's checks (toolkit/preflight).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from toolkit.config import (
    DatasetConfig,
    LoggingConfig,
    ModelProcessConfig,
    NetworkConfig,
    SampleConfig,
    SaveConfig,
    TrainConfig,
)
from toolkit.preflight.datasets import dataset_notices, dataset_problems
from toolkit.preflight.evaluation import validation_split_problems
from toolkit.preflight.lora_targets import lora_target_problems
from toolkit.preflight.output_folders import output_folder_problems, run_name_problems
from toolkit.preflight.sampling import sample_problems

from .checkpoint_files import no_ema_filename
from .resume_check import newest_whole_save, resume_problems


class TrainProcessConfig(ModelProcessConfig):
    """`type: sd_trainer`: train a LoRA on LTX-2 from a folder of clips."""

    type: Literal["sd_trainer"] = Field(description="Train a LoRA.")
    training_folder: str = Field(
        default="output", description="Parent folder of the run; files go to <training_folder>/<name>/."
    )
    trigger_word: str | None = Field(
        default=None,
        description=(
            "Word that calls the LoRA: replaces `[trigger]` in captions and sample prompts, and is prepended "
            "to captions that lack it."
        ),
    )
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="The LoRA adapter.")
    save: SaveConfig = Field(default_factory=SaveConfig, description="When and how checkpoints are saved.")
    datasets: list[DatasetConfig] = Field(min_length=1, description="Training folders (at least one).")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation settings.")
    sample: SampleConfig = Field(default_factory=SampleConfig, description="Sampling during training.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logger, metrics and inspection.")

    @model_validator(mode="after")
    def _preservation_needs_a_trigger_word(self) -> TrainProcessConfig:
        if self.train.diff_output_preservation and not self.trigger_word:
            raise ValueError(
                "train.diff_output_preservation needs `trigger_word` (the word replaced by "
                "train.diff_output_preservation_class in the preservation captions); set trigger_word or switch "
                "diff_output_preservation off"
            )
        return self

    @model_validator(mode="after")
    def _evaluation_has_clips_to_evaluate_and_to_train(self) -> TrainProcessConfig:
        """Held-out clips and `eval_every` come together; something is left to train; no clip is in both."""
        problems = _evaluation_setting_problems(self)
        if problems:
            details: list[InitErrorDetails] = [
                {"type": PydanticCustomError("value_error", "{error}", {"error": message}), "loc": loc, "input": value}
                for loc, value, message in problems
            ]
            raise ValidationError.from_exception_data(type(self).__name__, details)
        return self

    def run_folder_problems(self, where: str, name: str) -> list[str]:
        """The run's name must fit the file system; a run saved in the folder must be one this config can resume."""
        longest = no_ema_filename(name, max(self.train.steps, 1))
        problems = run_name_problems(self.training_folder, name, longest)
        if problems:
            return problems  # a name the folder cannot take holds no saved run either
        saved = newest_whole_save(Path(self.training_folder).expanduser() / name, self.type, self.training_folder)
        return resume_problems(saved, self.model_dump(mode="json"), where) if saved else []

    def problems_before_loading(self, where: str) -> list[str]:
        return [
            *output_folder_problems(self.training_folder, f"{where}.training_folder"),
            *dataset_problems(self.datasets, f"{where}.datasets", self.model.arch_rules()),
            *validation_split_problems(self.datasets, self.train.validation_split, f"{where}.train.validation_split"),
            *sample_problems(self, where),
            *lora_target_problems(self, where),
        ]

    def notices_before_loading(self, where: str) -> list[str]:
        return dataset_notices(self.datasets, f"{where}.datasets", self.model.arch_rules())


def _evaluation_setting_problems(config: TrainProcessConfig) -> list[tuple[tuple, object, str]]:
    """(key location, value, message) of each evaluation setting that cannot work as given."""
    train, datasets = config.train, config.datasets
    held_out = [index for index, dataset in enumerate(datasets) if dataset.is_val]
    has_held_out = bool(held_out) or train.validation_split is not None
    problems: list[tuple[tuple, object, str]] = []
    if train.eval_every is not None and not has_held_out:
        problems.append((("train", "eval_every"), train.eval_every,
                         "evaluation is on but no clips are held out to evaluate: add a dataset with is_val: true "
                         "(clips never trained on), or set train.validation_split (e.g. 0.1) to hold out a share "
                         "of the training clips"))
    if train.eval_every is None:
        if held_out:
            problems.append((("datasets", held_out[0], "is_val"), True,
                             "held-out clips are never trained on, but train.eval_every is not set, so they would "
                             "never be evaluated either: set train.eval_every (e.g. 100)"))
        if train.validation_split is not None:
            problems.append((("train", "validation_split"), train.validation_split,
                             "validation_split holds clips out of training, but train.eval_every is not set, so "
                             "they would never be evaluated: set train.eval_every (e.g. 100)"))
        if config.save.keep_best:
            problems.append((("save", "keep_best"), True,
                             "keep_best keeps the LoRA with the lowest evaluation loss, but train.eval_every is not "
                             "set (no evaluation): set train.eval_every and hold out clips"))
    if held_out and len(held_out) == len(datasets):
        problems.append((("datasets",), len(datasets),
                         "every dataset has is_val: true, so nothing is left to train on; add a training dataset"))
    training_folders = {_folder(d.folder_path) for d in datasets if not d.is_val}
    for index in held_out:
        if _folder(datasets[index].folder_path) in training_folders:
            problems.append((("datasets", index, "folder_path"), datasets[index].folder_path,
                             "this is_val folder is also a training folder: its clips would be trained on and "
                             "evaluated, so the evaluation would not be on held-out clips; use separate folders, "
                             "or train.validation_split"))
    return problems


def _folder(folder_path: str) -> Path:
    return Path(folder_path).expanduser().resolve()
