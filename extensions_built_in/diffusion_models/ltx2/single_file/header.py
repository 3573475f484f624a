"""What an LTX-2 single file says about itself, read from its header alone (no tensor data).

The header of a `.safetensors` holds the tensor names and shapes and a
`__metadata__` string map. For LTX-2 the map carries `config` (JSON, see
single_file/config.py), `model_version` (a plain string in Lightricks'
files) and, in files this project writes, `diffusers`: the exact diffusers
config of each component, so a round trip rebuilds the same classes.

The version follows, in this order, from `model_version`, from the flags
in `config["transformer"]`, or from the tensor names: 2.5 has the keyframe
position embedding or feed-forwards without bias; 2.3 has per-head gates
(`to_gate_logits`), the prompt modulation (`prompt_adaln_single`), the
bandwidth-extending vocoder (`vocoder.bwe_generator.*`) or a decoder with a
fourth up-block; anything else is 2.0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import CheckpointError
from .keys import TRANSFORMER_PREFIX, split_keys

VERSIONS = ("2.0", "2.3", "2.5")


@dataclass(frozen=True)
class SingleFileHeader:
    """The tensor names, shapes and parsed metadata of one LTX-2 single file."""

    path: Path
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def components(self) -> dict[str, list[str]]:
        """{component: its original keys}, for the components the file holds."""
        return split_keys(self.shapes)

    @property
    def ltx_config(self) -> dict:
        """The `config` JSON (ltx-core field names), or {} when the file has none."""
        return self._json("config")

    @property
    def diffusers_configs(self) -> dict:
        """{component: diffusers config} as this project writes it, or {}."""
        return self._json("diffusers")

    @property
    def version(self) -> str:
        return version_from_header(self.metadata, self.ltx_config, self.shapes)

    @property
    def version_source(self) -> str:
        """Where the version was read: `model_version`, `config` or `tensor names`."""
        if _version_string(self.metadata.get("model_version")):
            return "model_version"
        if _version_from_flags(self.ltx_config.get("transformer") or {}):
            return "config"
        return "tensor names"

    def _json(self, key: str) -> dict:
        raw = self.metadata.get(key)
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise CheckpointError(
                f"{self.path}: the header's {key!r} metadata is not valid JSON ({error}); "
                "re-save the file or remove that entry"
            ) from error
        if not isinstance(value, dict):
            raise CheckpointError(
                f"{self.path}: the header's {key!r} metadata is {type(value).__name__}, not a JSON object"
            )
        return value


def read_header(path: str | Path) -> SingleFileHeader:
    """Read names, shapes and metadata of a `.safetensors` without loading its tensors."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            metadata = dict(handle.metadata() or {})
    except (OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({error})") from error
    return SingleFileHeader(path, shapes, metadata)


def version_from_header(metadata: dict, ltx_config: dict, keys) -> str:
    return (
        _version_string(metadata.get("model_version"))
        or _version_from_flags(ltx_config.get("transformer") or {})
        or _version_from_keys(keys)
    )


def _version_string(value) -> str | None:
    match = re.match(r"^\s*v?(\d+\.\d+)", str(value or ""))
    return match[1] if match and match[1] in VERSIONS else None


def _version_from_flags(section: dict) -> str | None:
    if section.get("use_keyframes_abs_pos_embedding") or section.get("ff_bias") is False:
        return "2.5"
    if section.get("apply_gated_attention") or section.get("cross_attention_adaln") or section.get(
        "caption_proj_before_connector"
    ):
        return "2.3"
    return None


def _version_from_keys(keys) -> str:
    keys = list(keys)
    if f"{TRANSFORMER_PREFIX}keyframes_abs_pos_embedding" in keys:
        return "2.5"
    gated = any(key.endswith("to_gate_logits.weight") for key in keys)
    if gated and f"{TRANSFORMER_PREFIX}transformer_blocks.0.ff.net.0.proj.bias" not in keys:
        return "2.5"
    markers = (f"{TRANSFORMER_PREFIX}prompt_adaln_single.", "vocoder.bwe_generator.", "vae.decoder.up_blocks.8.")
    if gated or any(key.startswith(markers) for key in keys):
        return "2.3"
    return "2.0"
