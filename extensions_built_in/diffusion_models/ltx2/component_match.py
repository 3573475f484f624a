"""A checkpoint's components checked against each other before any weight is read.

A folder assembled by hand (a 2.3 `transformer/` dropped into a 2.0 folder), or a single file
paired with a base folder that supplies what the file lacks, can mix versions. diffusers loads
such a mix, and it would train and cache its latents under the transformer's version. What each
component's config says (config.json, or the single file's header) is enough to see it:

- latent channels: the transformer's `in_channels` are the video VAE's `latent_channels`, its
  `audio_in_channels` the audio VAE's `latent_channels` x its latent mel bins (`mel_bins` / 4),
  and the vocoder reads the audio VAE's `output_channels` x `mel_bins`;
- the video decoder's layout: 3 up-blocks on 2.0, 4 on 2.3 and later;
- the vocoder's class: `LTX2Vocoder` on 2.0, `LTX2VocoderWithBWE` on 2.3 and later;
- the text encoder: Gemma 3 up to 2.3, Gemma 4 on 2.5, its width and layer count the connectors'
  `caption_channels` and `text_proj_in_factor` - 1; the connectors project per modality from 2.3.

The transformer's version is the reference (variant.py reads it from the transformer's flags alone).
Each problem names both components, the file each config was read from, and what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.errors import ModelLoadError

from .checkpoint_configs import component_config_json, component_entry
from .published_versions import VOCODER_CLASS
from .variant import variant_from_configs

# AutoencoderKLLTX2Audio.mel_compression_ratio (a constant of the class in diffusers 0.42.1).
AUDIO_MEL_COMPRESSION = 4
CHECKED = ("transformer", "connectors", "text_encoder", "vae", "audio_vae", "vocoder")
DECODER_UP_BLOCKS = {"2.0": 3, "2.3": 4, "2.5": 4}


@dataclass(frozen=True)
class ComponentConfig:
    """One component's class and config, and where the config was read from."""

    name: str
    class_name: str
    config: dict
    where: str

    def label(self) -> str:
        return f"the {self.name} ({self.class_name}, {self.where})"


def component_configs(source, local_only: bool = False) -> dict[str, ComponentConfig]:
    """The checked components' configs of a resolved CheckpointSource: a single file's header for what it
    holds, the base folder's config.json for the rest (a missing one is an error naming the component)."""
    configs = {}
    for name in CHECKED:
        if name in source.single_file_components:
            from .single_file_loading import component_class, component_config

            cls = component_class(source.single_file_header, name)
            config = component_config(source.single_file_header, name, cls, source.base)
            configs[name] = ComponentConfig(name, cls.__name__, config, f"{source.location} header")
            continue
        _, class_name = component_entry(source.base, name, local_only=local_only)
        config = component_config_json(source.base, name, local_only=local_only)
        configs[name] = ComponentConfig(name, class_name, config, f"{source.base}/{name}/config.json")
    return configs


def mismatches(configs: dict[str, ComponentConfig]) -> list[str]:
    """One message per pair of components that do not belong together (none when they all fit)."""
    transformer = configs["transformer"]
    version = variant_from_configs({}, transformer.config).version
    reference = f"{transformer.label()}, LTX-{version}"
    problems = [*_latent_channels(configs, reference), *_decoders(configs, version, reference)]
    problems += _text_side(configs, version, reference)
    return problems


def _latent_channels(configs: dict[str, ComponentConfig], reference: str) -> list[str]:
    transformer, vae, audio_vae, vocoder = (configs[n] for n in ("transformer", "vae", "audio_vae", "vocoder"))
    problems = []
    video = transformer.config.get("in_channels", 128), vae.config.get("latent_channels", 128)
    if video[0] != video[1]:
        problems.append(
            f"{reference} takes {video[0]} latent channels but {vae.label()} makes {video[1]}: they are of different "
            "models; use the video VAE of the transformer's release"
        )
    mel_bins = audio_vae.config.get("mel_bins", 64)
    audio_tokens = audio_vae.config.get("latent_channels", 8) * (mel_bins // AUDIO_MEL_COMPRESSION)
    if transformer.config.get("audio_in_channels", 128) != audio_tokens:
        problems.append(
            f"{reference} takes audio tokens of {transformer.config.get('audio_in_channels', 128)} features but "
            f"{audio_vae.label()} makes {audio_tokens} ({audio_vae.config.get('latent_channels', 8)} latent channels x "
            f"{mel_bins} // {AUDIO_MEL_COMPRESSION} mel bins); use the audio VAE of the transformer's release"
        )
    mel_features = audio_vae.config.get("output_channels", 2) * mel_bins
    if vocoder.config.get("in_channels", 128) != mel_features:
        problems.append(
            f"{vocoder.label()} reads {vocoder.config.get('in_channels', 128)} mel features but {audio_vae.label()} "
            f"decodes {mel_features} ({audio_vae.config.get('output_channels', 2)} channels x {mel_bins} mel bins); "
            "use the vocoder of the audio VAE's release"
        )
    return problems


def _decoders(configs: dict[str, ComponentConfig], version: str, reference: str) -> list[str]:
    vae, vocoder = configs["vae"], configs["vocoder"]
    problems = []
    up_blocks = len(vae.config.get("decoder_block_out_channels", (256, 512, 1024)))
    if up_blocks != DECODER_UP_BLOCKS[version]:
        problems.append(
            f"{reference} and {vae.label()} do not belong together: the video decoder has {up_blocks} up-blocks "
            f"where LTX-{version}'s has {DECODER_UP_BLOCKS[version]} (2.0: 3, 2.3 and later: 4); use the vae/ of an "
            f"LTX-{version} checkpoint"
        )
    if vocoder.class_name != VOCODER_CLASS[version]:
        problems.append(
            f"{reference} and {vocoder.label()} do not belong together: LTX-{version} uses {VOCODER_CLASS[version]} "
            f"(2.0: LTX2Vocoder, 2.3 and later: LTX2VocoderWithBWE); use the vocoder/ of an LTX-{version} checkpoint"
        )
    return problems


def _text_side(configs: dict[str, ComponentConfig], version: str, reference: str) -> list[str]:
    text_encoder, connectors = configs["text_encoder"], configs["connectors"]
    problems = []
    gemma4 = str(text_encoder.config.get("model_type", "")).startswith("gemma4") or "Gemma4" in text_encoder.class_name
    if gemma4 != (version == "2.5"):
        wanted = "a Gemma 4 text encoder" if version == "2.5" else "a Gemma 3 text encoder (Gemma 4 is LTX-2.5's)"
        problems.append(
            f"{reference} and {text_encoder.label()} do not belong together: LTX-{version} reads {wanted}; use the "
            f"text_encoder/ (and tokenizer/) of an LTX-{version} checkpoint"
        )
    per_modality = bool(connectors.config.get("per_modality_projections", False))
    if per_modality != (version != "2.0"):
        layout = "one projection per modality (2.3 and later)" if per_modality else "one shared projection (2.0)"
        problems.append(
            f"{reference} and {connectors.label()} do not belong together: the connectors have {layout}; use the "
            f"connectors/ of an LTX-{version} checkpoint"
        )
    text = text_encoder.config.get("text_config", text_encoder.config)
    width, layers = text.get("hidden_size"), text.get("num_hidden_layers")
    expected = connectors.config.get("caption_channels", 3840), connectors.config.get("text_proj_in_factor", 49) - 1
    if width is not None and layers is not None and (width, layers) != expected:
        problems.append(
            f"{connectors.label()} read {expected[1]} layers of width {expected[0]} but {text_encoder.label()} has "
            f"{layers} of width {width}; use the text encoder of the connectors' release"
        )
    return problems


def check_components_match(source) -> None:
    """load_model's check, before any weight is read: a ConfigError (exit 2) listing every mismatch."""
    problems = mismatches(component_configs(source))
    if problems:
        from toolkit.errors import ConfigError

        raise ConfigError([f"model.name_or_path: {problem}" for problem in problems])


def component_problems(model_config) -> list[str]:
    """Before loading (the dry run): `mismatches` of the checkpoint `model_config` names, as config problems.

    A hub id whose configs are not in the local hub cache has nothing to read here (the dry run does not
    download); the run checks it in load_model once the configs are fetched.
    """
    from .checkpoint import resolve_source
    from .checkpoint_check import is_unreadable_hub_id

    try:
        source = resolve_source(model_config.name_or_path, getattr(model_config, "base_model_path", None))
        configs = component_configs(source, local_only=True)
    except ModelLoadError:
        if is_unreadable_hub_id(model_config.name_or_path):
            return []
        raise
    return [f"model.name_or_path: {problem}" for problem in mismatches(configs)]
