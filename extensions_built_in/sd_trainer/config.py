"""`type: sd_trainer`'s config: the process mapping, validated by pydantic alone (no torch), registered in __init__.py.

Its blocks (datasets, network, save, train, sample, logging) are the toolkit's (toolkit/config); what to
check before loading is listed here, from the toolkit's checks (toolkit/preflight).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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
from toolkit.preflight.lora_targets import lora_target_problems
from toolkit.preflight.output_folders import output_folder_problems
from toolkit.preflight.sampling import sample_problems


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

    def problems_before_loading(self, where: str) -> list[str]:
        return [
            *output_folder_problems(self.training_folder, f"{where}.training_folder"),
            *dataset_problems(self.datasets, f"{where}.datasets"),
            *sample_problems(self, where),
            *lora_target_problems(self, where),
        ]

    def notices_before_loading(self, where: str) -> list[str]:
        return dataset_notices(self.datasets, f"{where}.datasets")
