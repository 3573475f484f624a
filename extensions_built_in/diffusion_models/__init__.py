"""Registers the model archs: `ltx2` (any LTX-2 version, read from the weights; the default arch), `ltx2.3` and
`ltx2.5` (that version only; another one is an error before loading). One class serves all (ltx2/LTX2Model.py,
imported only when a model is loaded); their shape rules (ltx2/arch_rules.py) are plain Python, read by the config
loader before anything loads."""

from __future__ import annotations

from toolkit.extensions import register_model_arch

from .ltx2.arch_rules import LTX2_RULES

for _arch in ("ltx2", "ltx2.3", "ltx2.5"):
    register_model_arch(
        _arch, "extensions_built_in.diffusion_models.ltx2.LTX2Model:LTX2Model", LTX2_RULES, default=_arch == "ltx2"
    )
