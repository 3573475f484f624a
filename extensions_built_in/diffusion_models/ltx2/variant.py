"""Which LTX-2 a checkpoint holds (2.0, 2.3 or 2.5), read from its weights' configs.

diffusers 0.42.1 stores no version: it follows from what the components
contain. The signs, by version:

- 2.3: the transformer's gated attention (`gated_attn`, per-head
  `to_gate_logits`), cross-attention modulation (`cross_attn_mod`), the
  caption projection moved into the connectors (`use_prompt_embeddings:
  false`, connectors with `per_modality_projections`) and the vocoder with
  bandwidth extension (`LTX2VocoderWithBWE`).
- 2.5: all of 2.3 (the prompt AdaLN included: diffusers' converter keeps
  `use_prompt_adaln_single` on), plus `ff_bias: false`, the keyframe position
  embedding (`use_keyframes_abs_pos_embedding`) and a Gemma 4 text encoder;
  its folders may also hold a prompt enhancer, a duration head or a diffusion
  decoder.

The version is the highest one any sign points to; `flags` keeps every
sign, so a checkpoint that mixes them is visible in the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERSIONS = ("2.0", "2.3", "2.5")
ARCH_BY_VERSION = {"2.0": "ltx2", "2.3": "ltx2.3", "2.5": "ltx2.5"}
VERSION_BY_ARCH = {arch: version for version, arch in ARCH_BY_VERSION.items()}

# Components LTX2Pipeline (and its 2.5 relatives) may list beyond the eight a LoRA run needs.
EXTRA_COMPONENTS = {
    "processor": "the Gemma processor for prompt enhancement with images",
    "prompt_enhancer": "the 2.5 prompt enhancer (a Gemma 4 that rewrites prompts before sampling)",
    "duration_head": "the 2.5 duration head (predicts a clip length from the prompt)",
    "diffusion_decoder": "the 2.5 diffusion video decoder (an alternative to the VAE decoder)",
}


@dataclass(frozen=True)
class LTX2Variant:
    """The LTX-2 version of a checkpoint and the flags that decide it."""

    version: str
    flags: dict = field(default_factory=dict)
    classes: dict = field(default_factory=dict)
    extra_components: tuple[str, ...] = ()

    @property
    def arch(self) -> str:
        """The `model.arch` value that names this version."""
        return ARCH_BY_VERSION[self.version]

    def describe(self) -> dict:
        return {
            "version": self.version,
            "arch": self.arch,
            "flags": dict(self.flags),
            "classes": dict(self.classes),
            "extra_components": list(self.extra_components),
        }

    def summary(self) -> str:
        """One line for the dry run and log: 'LTX-2.3 (gated_attn, cross_attn_mod, ...)', the flags that differ from 2.0."""
        on = [name for name, value in self.flags.items() if value is True]
        return f"LTX-{self.version}" + (f" ({', '.join(on)})" if on else "")


def variant_from_configs(
    model_index: dict,
    transformer: dict,
    connectors: dict | None = None,
    text_encoder: dict | None = None,
) -> LTX2Variant:
    """The variant from a diffusers folder's model_index.json and component config.json contents."""
    connectors = connectors or {}
    text_encoder = text_encoder or {}
    classes = {
        name: entry[1]
        for name, entry in model_index.items()
        if not name.startswith("_") and isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[1]
    }
    text_model_type = str(text_encoder.get("model_type", ""))
    prompt_modulation = bool(transformer.get("cross_attn_mod", False) or transformer.get("audio_cross_attn_mod", False))
    timestep_prompt_modulation = bool(transformer.get("use_prompt_adaln_single", True))
    # Every flag is False on LTX-2.0, so the ones that are True say what this checkpoint changes.
    flags = {
        "gated_attn": bool(transformer.get("gated_attn", False) or transformer.get("audio_gated_attn", False)),
        "cross_attn_mod": prompt_modulation,
        "prompt_adaln": prompt_modulation and timestep_prompt_modulation,
        "static_prompt_modulation": prompt_modulation and not timestep_prompt_modulation,
        "perturbed_attn": bool(transformer.get("perturbed_attn", False)),
        "caption_projection_in_connectors": not bool(transformer.get("use_prompt_embeddings", True)),
        "per_modality_projections": bool(connectors.get("per_modality_projections", False)),
        "ff_without_bias": not bool(transformer.get("ff_bias", True)),
        "keyframes_abs_pos_embedding": bool(transformer.get("use_keyframes_abs_pos_embedding", False)),
        "bandwidth_extension_vocoder": classes.get("vocoder") == "LTX2VocoderWithBWE",
        "gemma4_text_encoder": text_model_type.startswith("gemma4") or "Gemma4" in classes.get("text_encoder", ""),
    }
    extras = tuple(name for name in classes if name in EXTRA_COMPONENTS)
    return LTX2Variant(_version(flags), flags, classes, extras)


CLASS_BY_VERSION = {
    "vocoder": "LTX-2.0 folders use LTX2Vocoder, LTX-2.3 and later LTX2VocoderWithBWE",
    "text_encoder": (
        "LTX-2.0/2.3 folders use Gemma3ForConditionalGeneration, LTX-2.5 a Gemma 4 text encoder "
        "(Gemma4UnifiedForConditionalGeneration)"
    ),
}
"""The components whose class changes between versions, and how; other components keep theirs."""


def class_hint(name: str) -> str:
    """For an error about component `name`: how its class changes between versions, or '' when it does not."""
    return f" ({CLASS_BY_VERSION[name]})" if name in CLASS_BY_VERSION else ""


SIGNS_OF_2_5 = ("ff_without_bias", "keyframes_abs_pos_embedding", "gemma4_text_encoder")


def _version(flags: dict) -> str:
    if any(flags[name] for name in SIGNS_OF_2_5):
        return "2.5"
    if any(flags.values()):
        return "2.3"
    return "2.0"


def check_arch(arch: str, variant: LTX2Variant, name_or_path: str) -> None:
    """`model.arch: ltx2` takes any LTX-2 (the version is read from the weights); `ltx2.3` / `ltx2.5` ask for that
    version, and a checkpoint of another one is a config error (exit 2) before any weight is loaded."""
    from toolkit.errors import ConfigError

    wanted = VERSION_BY_ARCH.get(arch)
    if arch == "ltx2" or wanted is None or wanted == variant.version:
        return
    raise ConfigError(
        f"model.arch: {arch} (LTX-{wanted}) but model.name_or_path {name_or_path} holds {variant.summary()}; "
        f"set model.arch to {variant.arch} (or ltx2 to take whichever version the weights are), or point "
        f"name_or_path at an LTX-{wanted} checkpoint"
    )
