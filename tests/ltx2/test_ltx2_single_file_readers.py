"""A written single file, read the way the other readers of LTX-2 files read it.

Lightricks' ltx-core (requirements-ltx-core.txt) runs here: each component is built from the
file's `config` header by ltx-core's own configurators and loaded with its own loader and key
maps (`*_COMFY_KEYS_FILTER`, `LTXV_MODEL_COMFY_RENAMING_MAP`, `EMBEDDINGS_PROCESSOR_KEY_OPS`), as
its pipelines do. At the tiny size a few parts cannot match, because ltx-core fixes their sizes in
code rather than reading them from the header; each is named where it is left out, and checked at
the published size instead (on the meta device, from the published diffusers configs: names and
shapes, no weights):

- the vocoder: 128 mel input channels (2 x 64 mel bins) and three dilations per residual block;
- the text connectors' 128 learnable registers (the tiny connectors have none) and the text
  feature extractor, sized from Gemma 3 12B (3840 x 49 layers);
- the 2.5 transformer: ltx-core 1.0.0 predates LTX-2.5 (no keyframe position embedding, its
  feed-forwards always have a bias).

ComfyUI cannot run here; its detection rules (comfy/model_detection.py) are restated as facts: an
LTX-2 transformer is recognised by `adaln_single.emb.timestep_embedder.linear_1.bias`, the
audio-video model (`ltxav`) by `audio_adaln_single.linear.weight`; it counts
`transformer_blocks.N`, guesses `attention_head_dim` as attn2's output width / 32 and
`cross_attention_dim` as its input width, then lets `config["transformer"]` from the header
override what it guessed. diffusers: the marker keys of its LTX-2 single-file detection
(`CHECKPOINT_KEY_NAMES["ltx2"]`).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from extensions_built_in.diffusion_models.ltx2.single_file.config import from_ltx_config
from extensions_built_in.diffusion_models.ltx2.tiny.model import build_components
from tests.ltx2.single_file_writer.config import to_ltx_config
from tests.ltx2.single_file_writer.keys import original_keys
from tests.ltx2.single_file_writer.write import save_single_file

PREFIX = "model.diffusion_model."
VERSIONS = ("2.0", "2.3", "2.5")
CONNECTOR_KEYS = re.compile(r"^(video|audio)_embeddings_connector\.")
# The published 2.3 vocoder with fewer, narrower stages. It keeps what ltx-core fixes in code (128 mel
# inputs, three dilations per residual block) and the published activations; the full one builds some 200
# anti-aliasing filters, seconds of CPU for no other header field.
SMALL_BWE_VOCODER = {
    "hidden_channels": 64,
    "upsample_factors": [5, 2],
    "upsample_kernel_sizes": [11, 4],
    "resnet_kernel_sizes": [3],
    "resnet_dilations": [[1, 3, 5]],
    "bwe_hidden_channels": 32,
    "bwe_upsample_factors": [6, 5],
    "bwe_upsample_kernel_sizes": [12, 11],
    "bwe_resnet_kernel_sizes": [7],
    "bwe_resnet_dilations": [[1, 3, 5]],
}


def _parts(ltx_core) -> dict[str, list]:
    """{our component: [(ltx-core configurator, its key map), ...]}: the models ltx-core builds from it."""
    video, audio, text = ltx_core.video, ltx_core.audio, ltx_core.text
    return {
        "transformer": [(ltx_core.transformer.LTXModelConfigurator, ltx_core.transformer.LTXV_MODEL_COMFY_RENAMING_MAP)],
        "connectors": [(text.EmbeddingsProcessorConfigurator, text.EMBEDDINGS_PROCESSOR_KEY_OPS)],
        "vae": [
            (video.VideoEncoderConfigurator, video.VAE_ENCODER_COMFY_KEYS_FILTER),
            (video.VideoDecoderConfigurator, video.VAE_DECODER_COMFY_KEYS_FILTER),
        ],
        "audio_vae": [
            (audio.AudioEncoderConfigurator, audio.AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER),
            (audio.AudioDecoderConfigurator, audio.AUDIO_VAE_DECODER_COMFY_KEYS_FILTER),
        ],
        "vocoder": [(audio.VocoderConfigurator, audio.VOCODER_COMFY_KEYS_FILTER)],
    }


def _ltx_core_names(sd_ops, original_names) -> dict[str, str]:
    """{name in ltx-core's model: original single-file name} for the names `sd_ops` takes."""
    names = {}
    for original in original_names:
        renamed = sd_ops.apply_to_key(original)
        if renamed is not None:
            for name, _ in sd_ops.apply_to_key_value(renamed, torch.empty(0)):
                names[name] = original
    return names


def _meta_model(configurator, header: dict):
    with torch.device("meta"):
        return configurator.from_config(header)


@dataclass(frozen=True)
class Written:
    """One single file we wrote, from the tiny components of `version`."""

    version: str
    components: dict
    path: Path
    config: dict  # the `config` header, as ltx-core's loader reads it
    metadata: dict[str, str]
    shapes: dict[str, tuple[int, ...]]


@pytest.fixture(scope="module", params=VERSIONS)
def written(request, tmp_path_factory, ltx_core) -> Written:
    version = request.param
    components = build_components(version=version)
    path = save_single_file(components, tmp_path_factory.mktemp("readers") / f"ltx-{version}.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        metadata = dict(handle.metadata())
    config = ltx_core.loader.SafetensorsModelStateDictLoader().metadata(str(path))
    return Written(version, components, path, config, metadata, shapes)


def _load(ltx_core, configurator, sd_ops, written: Written, keep=lambda name: True):
    """ltx-core's model from the header, given the file's tensors through its key map.

    (model, the tensors given, missing names, unexpected names).
    """
    model = _meta_model(configurator, written.config)
    tensors = ltx_core.loader.SafetensorsModelStateDictLoader().load(str(written.path), sd_ops=sd_ops).sd
    tensors = {name: tensor for name, tensor in tensors.items() if keep(name)}
    result = model.load_state_dict(tensors, strict=False, assign=True)
    return model, tensors, set(result.missing_keys), set(result.unexpected_keys)


def _assert_our_weights(model, sd_ops, components, name, prefix="", left_out=frozenset()):
    """Every tensor ltx-core's model holds is our component's, under the name ltx-core's key map gives it."""
    ours = components[name].state_dict()
    mapping = original_keys(name, list(ours))
    names = _ltx_core_names(sd_ops, mapping)
    held = {key: tensor for key, tensor in model.state_dict().items() if key.startswith(prefix) and key not in left_out}
    assert held and set(held) <= set(names)
    for key, tensor in held.items():
        assert torch.equal(tensor, ours[mapping[names[key]]]), key


@pytest.mark.parametrize("name", ["vae", "audio_vae"])
def test_ltx_core_builds_and_loads_the_vaes_strictly(written, ltx_core, name):
    for configurator, sd_ops in _parts(ltx_core)[name]:
        model, _, missing, unexpected = _load(ltx_core, configurator, sd_ops, written)
        assert (sorted(missing), sorted(unexpected)) == ([], []), configurator.__name__
        _assert_our_weights(model, sd_ops, written.components, name)


def test_ltx_core_builds_and_loads_the_transformer_strictly(written, ltx_core):
    # "2.3.0", not "2.3": a reader that parses each header entry as JSON keeps it a string.
    assert written.metadata["model_version"] == f"{written.version}.0"
    [(configurator, sd_ops)] = _parts(ltx_core)["transformer"]
    # The connectors share the transformer's prefix; ltx-core loads them into its text processor (below).
    model, _, missing, unexpected = _load(
        ltx_core, configurator, sd_ops, written, keep=lambda key: not CONNECTOR_KEYS.match(key)
    )
    if written.version == "2.5":
        # ltx-core 1.0.0 has no LTX-2.5: it always builds feed-forward biases (and the prompt modulation the
        # tiny 2.5 leaves out), and has no keyframe position embedding. Everything else is the same.
        without_bias = {f"transformer_blocks.{i}.ff.net.{part}.bias" for i in range(2) for part in ("0.proj", "2")}
        prompt_modulation = {name for name in missing if "prompt_adaln_single." in name}
        assert written.config["transformer"]["use_prompt_adaln_single"] is not bool(prompt_modulation)
        assert (missing - prompt_modulation, unexpected) == (without_bias, {"keyframes_abs_pos_embedding"})
        return
    assert (sorted(missing), sorted(unexpected)) == ([], [])
    _assert_our_weights(model, sd_ops, written.components, "transformer")


def test_ltx_core_builds_and_loads_the_text_connectors(written, ltx_core):
    [(configurator, sd_ops)] = _parts(ltx_core)["connectors"]
    model, tensors, missing, unexpected = _load(
        ltx_core, configurator, sd_ops, written, keep=lambda key: not key.startswith("feature_extractor.")
    )
    registers = {"video_connector.learnable_registers", "audio_connector.learnable_registers"}
    assert unexpected == set()
    assert {name for name in missing if not name.startswith("feature_extractor.")} == registers
    assert all(name.startswith(("video_connector.", "audio_connector.")) for name in tensors)
    for prefix in ("video_connector.", "audio_connector."):
        _assert_our_weights(model, sd_ops, written.components, "connectors", prefix, left_out=registers)


def _published(name: str, version: str):
    """The published diffusers component `name` on the meta device (the 2.3 vocoder made smaller, above)."""
    from accelerate import init_empty_weights
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    from extensions_built_in.diffusion_models.ltx2.published_versions import published_component

    with init_empty_weights():
        if name == "vocoder" and version != "2.0":
            return LTX2VocoderWithBWE(**SMALL_BWE_VOCODER)
        return published_component(name, version)


def _transformer_config(version: str) -> dict:
    """The published transformer's diffusers config (its constructor defaults and the version's flags), unbuilt."""
    from diffusers import LTX2VideoTransformer3DModel

    from extensions_built_in.diffusion_models.ltx2.published_versions import TRANSFORMER_ARGS

    signature = inspect.signature(LTX2VideoTransformer3DModel.__init__)
    defaults = {name: p.default for name, p in signature.parameters.items() if p.default is not p.empty}
    return {**defaults, **TRANSFORMER_ARGS[version]}


@pytest.mark.parametrize("version", ["2.0", "2.3"])
@pytest.mark.parametrize("name", ["vae", "audio_vae", "vocoder", "connectors"])
def test_ltx_core_builds_the_published_components_from_our_header(ltx_core, name, version):
    """At the published widths, every model ltx-core builds from our header has the names and shapes of ours."""
    component = _published(name, version)
    configs = {name: {"_class_name": type(component).__name__, **component.config}}
    if name == "connectors":  # ltx-core reads the connectors' sizes from the transformer section
        configs["transformer"] = _transformer_config(version)
    header = to_ltx_config(configs)
    shapes = {original: tuple(component.state_dict()[key].shape)
              for original, key in original_keys(name, list(component.state_dict())).items()}
    for configurator, sd_ops in _parts(ltx_core)[name]:
        expected = {ltx_name: shapes[original] for ltx_name, original in _ltx_core_names(sd_ops, shapes).items()}
        built = {key: tuple(tensor.shape) for key, tensor in _meta_model(configurator, header).state_dict().items()}
        assert built == expected, configurator.__name__


def _count(shapes, pattern: str) -> int:
    indices = {int(m[1]) for key in shapes if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def test_comfyui_detects_an_audio_video_ltx_model_with_the_right_sizes(written):
    components, shapes = written.components, written.shapes
    assert f"{PREFIX}adaln_single.emb.timestep_embedder.linear_1.bias" in shapes
    assert f"{PREFIX}audio_adaln_single.linear.weight" in shapes  # ltxav, not the video-only ltxv
    attn2 = shapes[f"{PREFIX}transformer_blocks.0.attn2.to_k.weight"]
    detected = {
        "num_layers": _count(shapes, rf"{re.escape(PREFIX)}transformer_blocks\.(\d+)\."),
        "attention_head_dim": attn2[0] // 32,  # ComfyUI assumes the published 32 heads ...
        "cross_attention_dim": attn2[1],
    }
    merged = {**detected, **written.config["transformer"]}  # ... and the header corrects it
    transformer = components["transformer"].config
    assert merged["num_layers"] == transformer.num_layers
    assert merged["attention_head_dim"] * merged["num_attention_heads"] == attn2[0]
    assert merged["cross_attention_dim"] == transformer.cross_attention_dim
    assert merged["vae_scale_factors"] == list(transformer.vae_scale_factors)


def test_diffusers_finds_its_ltx2_marker_keys(written):
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES

    shapes = written.shapes
    # diffusers 0.42.1's infer_diffusers_model_type tests the LTX-Video keys first, which every LTX-2 file
    # (the published one too) also holds (`patchify_proj`), so it answers "ltx-video"; its LTX-2 branch
    # looks for these keys, all of which the file must hold.
    assert [key for key in CHECKPOINT_KEY_NAMES["ltx2"] if key not in shapes] == []


def test_our_reader_reads_the_published_2_3_decoder_back_from_the_header():
    """A Lightricks file has no `diffusers` entry: the decoder's layout comes from ltx-core's block list alone."""
    vae = dict(_published("vae", "2.3").config)
    read = from_ltx_config(to_ltx_config({"vae": vae}))["vae"]
    fields = ("decoder_layers_per_block", "decoder_inject_noise", "decoder_spatio_temporal_scaling",
              "upsample_type", "upsample_residual", "upsample_factor", "layers_per_block", "downsample_type")
    assert {field: tuple(read[field]) for field in fields} == {field: tuple(vae[field]) for field in fields}
