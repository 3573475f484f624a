"""The LoRA to start from exists; its filters select layers of the transformer (asked of the model arch).

Reading module names is model-specific (each arch builds its transformer on
the meta device its own way), so the arch's model class provides
`lora_target_problems(model_config, network_config) -> [(key, message)]`; an
arch without it is not checked here and fails, if it must, when it loads.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.config import ModelProcessConfig
from toolkit.errors import ConfigError, ModelLoadError
from toolkit.extensions import load_model_class


def lora_target_problems(process: ModelProcessConfig, where: str) -> list[str]:
    """`process` is a training process's config: it has a `network` block (toolkit/config)."""
    network = process.network
    start = network.pretrained_lora_path
    if start and not Path(start).expanduser().is_file():
        return [
            f"{where}.network.pretrained_lora_path: {start} is not a file (relative paths are from {Path.cwd()}); "
            "point it at a LoRA .safetensors file or remove it"
        ]
    if not network.target_modules and not network.exclude_modules:
        return []  # the arch's default targets
    try:
        model_class = load_model_class(process.model.arch)
    except ConfigError as error:
        return [f"{where}.model.arch: {error}"]
    check = getattr(model_class, "lora_target_problems", None)
    if not callable(check):
        return []
    try:
        found = check(process.model, network)
    except (ModelLoadError, OSError, ValueError) as error:
        return [f"{where}.model.name_or_path: cannot read the transformer's config to check the LoRA filters: {error}"]
    return [f"{where}.{key}: {message}" for key, message in found]
