"""The plan's published LTX-2 components are diffusers' converter configs, counted on the meta device.

The figures below are what diffusers' `scripts/convert_ltx2_to_diffusers.py` configs (`get_ltx2_*_config`
for 2.0, 2.3 and 2.5) build in diffusers 0.42.1, in millions of parameters; the plan must carry them.
"""

from __future__ import annotations

import pytest
from accelerate import init_empty_weights

from extensions_built_in.diffusion_models.ltx2.memory_plan_components import published_component_specs
from extensions_built_in.diffusion_models.ltx2.published_versions import published_component

CONVERTER_MILLIONS = {
    "2.0": {"transformer": 18876.17, "connectors": 1431.48, "vae": 1222.48, "audio_vae": 53.25, "vocoder": 55.59},
    "2.3": {"transformer": 18988.84, "connectors": 3172.23, "vae": 726.11, "audio_vae": 53.25, "vocoder": 128.54},
    "2.5": {"transformer": 18987.86, "connectors": 3172.23, "vae": 726.11, "audio_vae": 53.25, "vocoder": 128.54},
}


def _millions(module) -> float:
    return round(sum(parameter.numel() for parameter in module.parameters()) / 1e6, 2)


@pytest.mark.parametrize("version", sorted(CONVERTER_MILLIONS))
def test_the_plan_counts_each_published_component_as_the_converter_builds_it(version):
    specs = published_component_specs(version)
    assert {name: round(specs[name].params / 1e6, 2) for name in CONVERTER_MILLIONS[version]} == CONVERTER_MILLIONS[version]


def test_the_2_3_video_vae_is_the_converters_four_block_decoder():
    with init_empty_weights():
        vae_2_0, vae_2_3 = published_component("vae", "2.0"), published_component("vae", "2.3")
    assert (_millions(vae_2_3.encoder), _millions(vae_2_3.decoder)) == (318.94, 407.17)
    assert (len(vae_2_0.decoder.up_blocks), len(vae_2_3.decoder.up_blocks)) == (3, 4)
    assert published_component_specs("2.3")["vae"].params == sum(p.numel() for p in vae_2_3.parameters())


def test_2_5_keeps_the_prompt_adaln_of_2_3():
    with init_empty_weights():
        transformer = published_component("transformer", "2.5")
    assert transformer.config.use_prompt_adaln_single is True and transformer.config.ff_bias is False
    assert _millions(transformer.prompt_adaln) + _millions(transformer.audio_prompt_adaln) == pytest.approx(64.51, abs=0.01)
