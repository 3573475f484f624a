"""Load the components an LTX-2 single file holds (2.0, 2.3, 2.5): transformer, connectors, both VAEs, vocoder.

diffusers' `from_single_file` covers the transformer and the two VAEs of 2.0
only and needs a diffusers config (a hub download or `config=`). Here each
component is built from its config on the meta device and then given the
file's tensors, renamed by extensions_built_in.diffusion_models.ltx2.single_file.keys (diffusers'
converters plus the 2.3 gaps), strictly: a missing or unexpected tensor is an
error naming the file and the component.

The config of a component comes, first match wins, from the file's exact
`diffusers` header entry (files this project writes), else from the class
defaults (the published architecture), then `base_model_path`'s config of
the same class, then what the file's ltx-core `config` header states, then
what the tensor shapes state (connector widths, learnable registers, vocoder
input channels), so a Lightricks file decides its own version.
"""

from __future__ import annotations

import re

import torch

from toolkit.errors import CheckpointError, ModelLoadError
from extensions_built_in.diffusion_models.ltx2.single_file.config import from_ltx_config
from extensions_built_in.diffusion_models.ltx2.single_file.header import SingleFileHeader
from extensions_built_in.diffusion_models.ltx2.single_file.keys import TRANSFORMER_PREFIX, to_diffusers_state_dict

_CONNECTOR = f"{TRANSFORMER_PREFIX}{{}}_embeddings_connector."


def component_class(header: SingleFileHeader, name: str):
    """The diffusers class of component `name` in this file (the vocoder's follows its tensors)."""
    import diffusers
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    if name == "vocoder":
        with_bwe = any(key.startswith("vocoder.bwe_generator.") for key in header.components.get("vocoder", []))
        return LTX2VocoderWithBWE if with_bwe else LTX2Vocoder
    classes = {
        "transformer": diffusers.LTX2VideoTransformer3DModel,
        "connectors": LTX2TextConnectors,
        "vae": diffusers.AutoencoderKLLTX2Video,
        "audio_vae": diffusers.AutoencoderKLLTX2Audio,
    }
    return classes[name]


def component_config(header: SingleFileHeader, name: str, cls, base: str | None) -> dict:
    """The diffusers config to build component `name` with (see the module docstring for the order)."""
    exact = header.diffusers_configs.get(name)
    if exact:
        return dict(exact)
    config = _base_config(cls, base, name)
    config.update(from_ltx_config(header.ltx_config).get(name, {}))
    config.update(_shape_facts(header, name))
    # The connectors' projection reads caption_channels x (text encoder layers + 1) features.
    in_features = config.pop("_projection_in_features", None)
    if in_features and config.get("caption_channels"):
        config["text_proj_in_factor"] = in_features // config["caption_channels"]
    # A decoder up-block's res blocks run at its channels divided by its upsampling factor.
    resnet_channels = config.pop("_decoder_resnet_channels", None)
    if resnet_channels and len(resnet_channels) == len(config.get("upsample_factor", ())):
        factors = list(reversed(config["upsample_factor"]))
        config["decoder_block_out_channels"] = tuple(reversed([c * f for c, f in zip(resnet_channels, factors)]))
    return config


def empty_component(header: SingleFileHeader, name: str, base: str | None):
    """Component `name` built from its config on the meta device, and {diffusers name: name in the file}.

    The names are checked against the model: a missing or unexpected tensor is a ModelLoadError.
    """
    from accelerate import init_empty_weights

    cls = component_class(header, name)
    config = component_config(header, name, cls, base)
    try:
        with init_empty_weights():
            model = cls.from_config(config)
    except (TypeError, ValueError, KeyError, IndexError) as error:
        raise ModelLoadError(
            f"{header.path}: cannot build the {name} ({cls.__name__}) from the file's config ({error}); "
            "check the file's `config` header, or set model.base_model_path to a diffusers folder of the same version"
        ) from error
    try:
        # The renames only look at names: map names first, then read one tensor at a time, so the host holds
        # the component once (plus one tensor), not the file's copy and ours.
        names = to_diffusers_state_dict(name, {key: key for key in header.components[name]})
    except CheckpointError as error:
        raise ModelLoadError(f"{header.path}: {error}") from error
    _check_keys(header, name, cls, set(model.state_dict()), set(names))
    return model, names


def load_single_file_component(header: SingleFileHeader, name: str, dtype: torch.dtype, base: str | None):
    """Build component `name` and load its tensors from the file at `dtype`, on the CPU."""
    from safetensors import safe_open

    model, names = empty_component(header, name, base)
    cls = type(model)
    state = {}
    with safe_open(str(header.path), framework="pt") as handle:
        for diffusers_key, original_key in names.items():
            tensor = handle.get_tensor(original_key)
            # Own (aligned) copies rather than views into the file's buffer.
            state[diffusers_key] = tensor.to(dtype if tensor.is_floating_point() else tensor.dtype, copy=True)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:  # shape mismatches: the config does not describe these tensors
        raise ModelLoadError(
            f"{header.path}: the {name} tensors do not fit a {cls.__name__} built from the file's config: {error}"
        ) from error
    return model.eval()


def _check_keys(header: SingleFileHeader, name: str, cls, expected: set[str], found: set[str]) -> None:
    from toolkit.memory_management.streamed_loading import name_mismatch

    mismatch = name_mismatch(sorted(expected), found)
    if mismatch is None:
        return
    raise ModelLoadError(
        f"{header.path}: the {name} ({cls.__name__}, version {header.version}) is incomplete or of another "
        f"layout: {mismatch}. Re-export the file, or remove the {name} from it so that it is read from "
        "model.base_model_path"
    )


def _base_config(cls, base: str | None, name: str) -> dict:
    """The base folder's config of this component when it is of the same class, else {} (class defaults)."""
    if not base:
        return {}
    try:
        config = dict(cls.load_config(base, subfolder=name))
    except (OSError, ValueError):
        return {}
    if config.get("_class_name") != cls.__name__:
        return {}
    return config


def _shape_facts(header: SingleFileHeader, name: str) -> dict:
    if name == "connectors":
        return _connector_facts(header.shapes)
    if name == "vocoder":
        return _vocoder_facts(header.shapes)
    if name == "vae":
        return _vae_facts(header.shapes)
    return {}


def _vae_facts(shapes: dict) -> dict:
    """Each decoder up-block's res-block width (original `up_blocks.2`, `.4`, ...: even indices after the mid block)."""
    widths = []
    index = 2
    while (shape := shapes.get(f"vae.decoder.up_blocks.{index}.res_blocks.0.conv1.conv.weight")) is not None:
        widths.append(shape[0])
        index += 2
    return {"_decoder_resnet_channels": widths} if widths else {}


def _connector_facts(shapes: dict) -> dict:
    """Projection widths, bias and per-connector registers and layers, from the connector tensors."""
    facts: dict = {}
    video = shapes.get("text_embedding_projection.video_aggregate_embed.weight")
    single = shapes.get("text_embedding_projection.aggregate_embed.weight")
    if video:
        audio = shapes["text_embedding_projection.audio_aggregate_embed.weight"]
        facts.update(per_modality_projections=True, video_hidden_dim=video[0], audio_hidden_dim=audio[0])
        facts["proj_bias"] = "text_embedding_projection.video_aggregate_embed.bias" in shapes
    elif single:
        facts.update(per_modality_projections=False, caption_channels=single[0])
        facts["proj_bias"] = "text_embedding_projection.aggregate_embed.bias" in shapes
    projection = video or single
    for modality in ("video", "audio"):
        prefix = _CONNECTOR.format(modality)
        registers = shapes.get(f"{prefix}learnable_registers")
        facts[f"{modality}_connector_num_learnable_registers"] = registers[0] if registers else None
        block = re.compile(re.escape(prefix) + r"transformer_1d_blocks\.(\d+)\.")
        layers = {int(m[1]) for key in shapes if (m := block.match(key))}
        if layers:
            facts[f"{modality}_connector_num_layers"] = max(layers) + 1
        facts[f"{modality}_gated_attn"] = any(key.startswith(prefix) and "to_gate_logits" in key for key in shapes)
    if projection:
        facts["_projection_in_features"] = projection[1]
    return facts


def _vocoder_facts(shapes: dict) -> dict:
    facts: dict = {}
    for prefix, field_prefix in (("vocoder.vocoder.", ""), ("vocoder.bwe_generator.", "bwe_"), ("vocoder.", "")):
        conv_in = shapes.get(f"{prefix}conv_pre.weight")
        if conv_in and f"{field_prefix}in_channels" not in facts:
            facts[f"{field_prefix}hidden_channels"] = conv_in[0]
            facts[f"{field_prefix}in_channels"] = conv_in[1]
            facts[f"{field_prefix}final_bias"] = f"{prefix}conv_post.bias" in shapes
            antialias_filter = shapes.get(f"{prefix}resblocks.0.acts1.0.upsample.filter")
            if antialias_filter:
                facts[f"{field_prefix}antialias_kernel_size"] = antialias_filter[-1]
    return facts
