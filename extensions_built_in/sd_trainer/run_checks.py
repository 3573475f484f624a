"""What sd_trainer refuses in a config before anything loads, `run` and `--dry-run` alike (on top of the schema)."""

from __future__ import annotations

from toolkit.errors import ConfigError

from .optim import check_optimizer_settings


def check_run_settings(config, import_package: bool = True) -> None:
    """ConfigError for a dtype the device cannot run, datasets that leave nothing to train on, or optimizer settings
    that cannot work (with `import_package`, also an optimizer package that is not installed)."""
    _check_dtype(config.train.dtype, config.device)
    _check_datasets(config.datasets)
    check_optimizer_settings(config.train, import_package=import_package)


def _check_datasets(datasets) -> None:
    training = [dataset for dataset in datasets if not dataset.is_val]  # held-out folders are checked by the schema
    if training and all(dataset.is_reg for dataset in training):
        raise ConfigError(
            "datasets: every dataset has is_reg: true; regularisation clips only hold the LoRA back, "
            "so add a dataset without is_reg to train on"
        )


def _check_dtype(dtype: str, device: str) -> None:
    if dtype == "fp16" and not device.startswith("cuda") and device != "auto":
        raise ConfigError("train.dtype: fp16 needs a CUDA device; on the CPU use bf16 or fp32")
