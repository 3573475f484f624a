"""Registers the model archs: `ltx2` (code in ltx2/LTX2Model.py, imported only when a model is loaded)."""

from __future__ import annotations

from toolkit.extensions import register_model_arch

register_model_arch("ltx2", "extensions_built_in.diffusion_models.ltx2.LTX2Model:LTX2Model")
