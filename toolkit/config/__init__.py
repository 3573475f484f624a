"""The job config: pydantic schema of the YAML, its loader and its error messages.

    from toolkit.config import load_config
    job = load_config("my_job.yaml", overrides=["config.process.0.model.verbose=true"])
    train = job.config.process[0]          # the class its `type` registered (sd_trainer: TrainProcessConfig)
    job.notes.lines()                      # ai-toolkit keys mapped, keys not used, values adjusted

Every section is a pydantic model with `extra="forbid"` and a description on
each field; invalid files raise one `toolkit.errors.ConfigError` listing every
problem by YAML key path. Nothing here imports torch.
"""

from __future__ import annotations

from toolkit.config.base import ConfigModel, Precision, QuantizationType
from toolkit.config.dataset import DatasetConfig
from toolkit.config.job import JobConfig, JobSpec
from toolkit.config.loader import load_config, merge_configs, parse_config, read_config_file, substitute_name
from toolkit.config.logging_config import GenerateLoggingConfig, LoggingConfig
from toolkit.config.model import ModelConfig
from toolkit.config.notes import ConfigNotes
from toolkit.config.network import NetworkConfig, SaveConfig
from toolkit.config.process import ModelProcessConfig, ProcessConfig
from toolkit.config.sampling import GenerateConfig, SampleConfig, SamplePrompt, SamplingSettings
from toolkit.config.train import EMAConfig, TrainConfig

__all__ = [
    "ConfigModel",
    "ConfigNotes",
    "DatasetConfig",
    "EMAConfig",
    "GenerateConfig",
    "JobConfig",
    "JobSpec",
    "GenerateLoggingConfig",
    "LoggingConfig",
    "ModelConfig",
    "ModelProcessConfig",
    "NetworkConfig",
    "Precision",
    "ProcessConfig",
    "QuantizationType",
    "SampleConfig",
    "SamplePrompt",
    "SamplingSettings",
    "SaveConfig",
    "TrainConfig",
    "load_config",
    "merge_configs",
    "parse_config",
    "read_config_file",
    "substitute_name",
]
