"""LoRA `target_modules` / `exclude_modules` checked before any weight is read.

The transformer is built on the meta device (`accelerate.init_empty_weights`:
module names and shapes, no memory, no weights) from the checkpoint's
transformer config, and the config's filters go through the same
`resolve_targets` the trainer uses after loading, one entry at a time, so a
filter that matches nothing is a config error before minutes of loading.

Which config: `tiny-ltx2` -> the tiny builder's; a diffusers folder -> its
`transformer/config.json`; a single file -> `base_model_path`'s when that is a
folder; anything else (a hub id) -> the published LTX-2 defaults.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

import torch

from toolkit.network.lora import resolve_targets

from .lora_names import LTX2_LORA_TARGETS

PUBLISHED = "published LTX-2 default"


def lora_target_problems(model_config, network_config) -> list[tuple[str, str]]:
    """(key under the process, message) for each filter entry that would select nothing."""
    if not network_config.target_modules and not network_config.exclude_modules:
        return []  # LTX-2's default targets: every block's attention and feed-forward layers
    config_folder = transformer_config_folder(model_config)
    transformer = meta_transformer(str(config_folder) if config_folder else None, _is_tiny(model_config))
    source = "tiny-ltx2" if _is_tiny(model_config) else str(config_folder or PUBLISHED)
    where = f"{type(transformer).__name__} ({source})"
    problems = [
        ("network.target_modules", _no_match(entry, transformer, where))
        for entry in network_config.target_modules or []
        if not _targets(transformer, network_config, [entry], [])
    ]
    if problems:
        return problems
    targeted = _targets(transformer, network_config, network_config.target_modules, [])
    for entry in network_config.exclude_modules:
        if len(_targets(transformer, network_config, network_config.target_modules, [entry])) == len(targeted):
            problems.append(
                ("network.exclude_modules", f"{entry!r} excludes none of the {len(targeted)} targeted layers of {where}")
            )
    if not problems and not _targets(
        transformer, network_config, network_config.target_modules, network_config.exclude_modules
    ):
        problems.append(
            ("network.exclude_modules", f"excludes every one of the {len(targeted)} targeted layers; nothing would train")
        )
    return problems


def transformer_config_folder(model_config) -> Path | None:
    """The folder whose config.json describes the transformer, or None for the published defaults."""
    if _is_tiny(model_config):
        return None
    for candidate in (model_config.name_or_path, model_config.base_model_path):
        if candidate and Path(candidate).expanduser().is_dir():
            folder = Path(candidate).expanduser() / "transformer"
            if (folder / "config.json").is_file():
                return folder
    return None


@functools.cache
def meta_transformer(config_folder: str | None, tiny: bool) -> torch.nn.Module:
    """LTX2VideoTransformer3DModel on the meta device: names and shapes only, nothing allocated."""
    from accelerate import init_empty_weights
    from diffusers import LTX2VideoTransformer3DModel

    with init_empty_weights(), torch.random.fork_rng(devices=[]):
        if tiny:
            from extensions_built_in.diffusion_models.ltx2.tiny.model import TINY_SEED, build_transformer

            return build_transformer(TINY_SEED)
        if config_folder is None:
            return LTX2VideoTransformer3DModel()
        return LTX2VideoTransformer3DModel.from_config(LTX2VideoTransformer3DModel.load_config(config_folder))


def _is_tiny(model_config) -> bool:
    from extensions_built_in.diffusion_models.ltx2.tiny.model import TINY_NAME

    return model_config.name_or_path == TINY_NAME


def _targets(transformer, network_config, includes, excludes) -> list[str]:
    update = {"target_modules": list(includes) if includes else None, "exclude_modules": list(excludes)}
    try:
        return resolve_targets(transformer, network_config.model_copy(update=update), LTX2_LORA_TARGETS)
    except ValueError:  # resolve_targets' way of saying "nothing matched"
        return []


def _no_match(entry: str, transformer, where: str) -> str:
    linear_names = [name for name, module in transformer.named_modules() if isinstance(module, torch.nn.Linear)]
    suffixes = {".".join(name.split(".")[-depth:]) for name in linear_names for depth in (1, 2, 3)}
    suffixes = sorted(suffix for suffix in suffixes if not suffix[0].isdigit())
    close = difflib.get_close_matches(entry, suffixes, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(name) for name in close)}? " if close else ""
    return (
        f"{entry!r} matches no linear layer of {where}; {hint}entries are whole trailing parts of a module name, "
        "such as 'attn1.to_q', 'audio_attn2.to_out.0' or 'ff.net.0.proj' of 'transformer_blocks.0.ff.net.0.proj'"
    )
